{{/* Secret holding the planner's serving certificate (tls.crt, tls.key). */}}
{{- define "ds.plannerTLSSecret" -}}
{{- if and (eq .Values.planner.tls.mode "secret") .Values.planner.tls.secretName }}
{{- .Values.planner.tls.secretName }}
{{- else }}
{{- include "ds.componentName" (dict "root" . "component" "planner-tls") }}
{{- end }}
{{- end }}

{{/* Name of the planner's API port: https unless planner.insecureHttp. */}}
{{- define "ds.plannerPortName" -}}
{{- if .Values.planner.insecureHttp }}http{{ else }}https{{ end }}
{{- end }}
