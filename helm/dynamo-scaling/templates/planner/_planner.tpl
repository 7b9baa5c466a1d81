{{/* The planner's mode and what follows from it. */}}

{{/* "true" when planner.mode is fleet (one planner for every DynamoScalingPolicy in
     planner.fleet.namespaces), else empty. */}}
{{- define "ds.plannerFleet" -}}
{{- if eq .Values.planner.mode "fleet" }}true{{ end }}
{{- end }}

{{/* Replicas: planner.replicas, else 2 in fleet mode (a standby takes over within a lease
     duration) and 1 in deployment mode (as before the fleet mode existed). */}}
{{- define "ds.plannerReplicas" -}}
{{- $r := .Values.planner.replicas }}
{{- if kindIs "invalid" $r }}
{{- if include "ds.plannerFleet" . }}2{{ else }}1{{ end }}
{{- else }}
{{- int $r }}
{{- end }}
{{- end }}

{{/* "true" when the planner runs with --leader-election: always in fleet mode (also with one
     replica, so that a rolling update never has two planners writing), and in deployment mode
     when it has more than one replica. */}}
{{- define "ds.plannerLeaderElection" -}}
{{- $v := .Values.planner }}
{{- if and $v.leaderElection.enabled (or (include "ds.plannerFleet" .) (gt (int (include "ds.plannerReplicas" .)) 1)) }}true{{ end }}
{{- end }}

{{- define "ds.plannerLease" -}}
{{- default (include "ds.componentName" (dict "root" . "component" "planner")) .Values.planner.leaderElection.leaseName }}
{{- end }}

{{/* Namespaces the fleet planner plans, as a JSON list: planner.fleet.namespaces, else the
     release namespace. */}}
{{- define "ds.plannerFleetNamespaces" -}}
{{- $ns := .Values.planner.fleet.namespaces }}
{{- if not $ns }}
{{- $ns = list .Release.Namespace }}
{{- end }}
{{- toJson $ns }}
{{- end }}
