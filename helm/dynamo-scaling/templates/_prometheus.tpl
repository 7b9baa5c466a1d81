{{/* Prometheus connection and signal mapping shared by the metrics server and the planner. */}}

{{/* The signals file's contents: the mapping value, with the dgd-labels preset when the chart's
PodMonitors add those labels and the mapping names no preset. */}}
{{- define "ds.signalsMapping" -}}
{{- $m := deepCopy (.Values.signals.mapping | default dict) }}
{{- if and .Values.podMonitors.enabled .Values.podMonitors.addDgdLabels (not (hasKey $m "preset")) }}
{{- $_ := set $m "preset" "dgd-labels" }}
{{- end }}
{{- toYaml $m }}
{{- end }}

{{/* Name of the ConfigMap holding signals.yaml, or empty for the built-in default. */}}
{{- define "ds.signalsConfigMap" -}}
{{- if .Values.signals.existingConfigMap -}}
{{ .Values.signals.existingConfigMap }}
{{- else if ne (include "ds.signalsMapping" .) "{}" -}}
{{ include "ds.fullname" . }}-signals
{{- end -}}
{{- end }}

{{- define "ds.signalsFile" -}}/etc/dynamo-scaling/signals/signals.yaml{{- end }}
{{- define "ds.promDir" -}}/etc/dynamo-scaling/prometheus{{- end }}

{{/* "Name: value,..." of prometheus.auth.headers. */}}
{{- define "ds.promHeaders" -}}
{{- $h := list }}
{{- range $k, $v := .Values.prometheus.auth.headers }}{{ $h = append $h (printf "%s: %s" $k $v) }}{{ end }}
{{- join "," $h }}
{{- end }}

{{- define "ds.promTokenFile" -}}
{{- $a := .Values.prometheus.auth }}
{{- if and $a.bearerTokenSecret $a.serviceAccountToken }}
{{- fail "prometheus.auth: give bearerTokenSecret or serviceAccountToken, not both" }}
{{- end }}
{{- if and $a.basicAuthSecret (or $a.bearerTokenSecret $a.serviceAccountToken) }}
{{- fail "prometheus.auth: basicAuthSecret and a bearer token exclude each other" }}
{{- end }}
{{- if $a.bearerTokenSecret -}}
{{ include "ds.promDir" . }}/token/token
{{- else if $a.serviceAccountToken -}}
/var/run/secrets/kubernetes.io/serviceaccount/token
{{- end }}
{{- end }}

{{/* Prometheus settings as environment variables; .prefix is DYNAMO_METRICS_ or DYNAMO_PLANNER_.
Names match each component's settings: flags of the metrics server, config fields of the planner. */}}
{{- define "ds.promEnv" -}}
{{- $root := .root }}
{{- $a := $root.Values.prometheus.auth }}
{{- $p := printf "%sPROMETHEUS_" .prefix }}
{{- with include "ds.promTokenFile" $root }}
- name: {{ $p }}BEARER_TOKEN_FILE
  value: {{ . | quote }}
{{- end }}
{{- if $a.basicAuthSecret }}
- name: {{ $p }}USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $a.basicAuthSecret }}
      key: username
- name: {{ $p }}PASSWORD_FILE
  value: {{ include "ds.promDir" $root }}/basic-auth/password
{{- end }}
{{- if $a.caSecret }}
- name: {{ $p }}CA_FILE
  value: {{ include "ds.promDir" $root }}/ca/ca.crt
{{- end }}
{{- if $a.clientCertSecret }}
- name: {{ $p }}CERT_FILE
  value: {{ include "ds.promDir" $root }}/client/tls.crt
- name: {{ $p }}KEY_FILE
  value: {{ include "ds.promDir" $root }}/client/tls.key
{{- end }}
{{- with include "ds.promHeaders" $root }}
- name: {{ $p }}HEADERS
  value: {{ . | quote }}
{{- end }}
{{- if eq .prefix "DYNAMO_PLANNER_" }}
{{- if include "ds.signalsConfigMap" $root }}
- name: DYNAMO_PLANNER_SIGNALS_FILE
  value: {{ include "ds.signalsFile" $root }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ds.promVolumeMounts" -}}
{{- $a := .Values.prometheus.auth }}
{{- if $a.bearerTokenSecret }}
- name: prometheus-token
  mountPath: {{ include "ds.promDir" . }}/token
  readOnly: true
{{- end }}
{{- if $a.basicAuthSecret }}
- name: prometheus-basic-auth
  mountPath: {{ include "ds.promDir" . }}/basic-auth
  readOnly: true
{{- end }}
{{- if $a.caSecret }}
- name: prometheus-ca
  mountPath: {{ include "ds.promDir" . }}/ca
  readOnly: true
{{- end }}
{{- if $a.clientCertSecret }}
- name: prometheus-client
  mountPath: {{ include "ds.promDir" . }}/client
  readOnly: true
{{- end }}
{{- if include "ds.signalsConfigMap" . }}
- name: signals
  mountPath: /etc/dynamo-scaling/signals
  readOnly: true
{{- end }}
{{- end }}

{{/* Secret volumes (no subPath, so renewed Secrets appear in place). */}}
{{- define "ds.promVolumes" -}}
{{- $a := .Values.prometheus.auth }}
{{- if $a.bearerTokenSecret }}
- name: prometheus-token
  secret:
    secretName: {{ $a.bearerTokenSecret }}
    items: [{key: token, path: token}]
{{- end }}
{{- if $a.basicAuthSecret }}
- name: prometheus-basic-auth
  secret:
    secretName: {{ $a.basicAuthSecret }}
    items: [{key: password, path: password}]
{{- end }}
{{- if $a.caSecret }}
- name: prometheus-ca
  secret:
    secretName: {{ $a.caSecret }}
    items: [{key: ca.crt, path: ca.crt}]
{{- end }}
{{- if $a.clientCertSecret }}
- name: prometheus-client
  secret:
    secretName: {{ $a.clientCertSecret }}
    items: [{key: tls.crt, path: tls.crt}, {key: tls.key, path: tls.key}]
{{- end }}
{{- with include "ds.signalsConfigMap" . }}
- name: signals
  configMap:
    name: {{ . }}
    items: [{key: signals.yaml, path: signals.yaml}]
{{- end }}
{{- end }}
