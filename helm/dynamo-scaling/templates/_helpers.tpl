{{/* Names, labels and shared pod pieces. */}}

{{- define "ds.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ds.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A component's object name: <fullname>-<component>, at most 63 characters. */}}
{{- define "ds.componentName" -}}
{{- printf "%s-%s" (include "ds.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component }}
{{- end }}

{{- define "ds.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ds.labels" -}}
helm.sh/chart: {{ include "ds.chart" . }}
app.kubernetes.io/name: {{ include "ds.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dynamo-scaling
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component: call with (dict "root" $ "component" "adapter"). */}}
{{- define "ds.componentLabels" -}}
{{ include "ds.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "ds.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ds.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "ds.image" -}}
{{- $img := .Values.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{/* ServiceAccount name of a component: (dict "root" $ "component" "planner"). */}}
{{- define "ds.serviceAccountName" -}}
{{- $values := index .root.Values (include "ds.valuesKey" .component) }}
{{- if $values.serviceAccount.name }}
{{- $values.serviceAccount.name }}
{{- else }}
{{- include "ds.componentName" . }}
{{- end }}
{{- end }}

{{- define "ds.valuesKey" -}}
{{- if eq . "metrics-server" }}metricsServer{{ else }}{{ . }}{{ end }}
{{- end }}

{{- define "ds.plannerNamespace" -}}
{{- default .Release.Namespace .Values.planner.deployment.namespace }}
{{- end }}

{{- define "ds.metricsServerTLSSecret" -}}
{{- if and (eq .Values.metricsServer.tls.mode "secret") .Values.metricsServer.tls.secretName }}
{{- .Values.metricsServer.tls.secretName }}
{{- else }}
{{- include "ds.componentName" (dict "root" . "component" "metrics-server-tls") }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by every Deployment: (dict "root" $ "values" .Values.adapter "component" "adapter"). */}}
{{- define "ds.podSpecCommon" -}}
serviceAccountName: {{ include "ds.serviceAccountName" (dict "root" .root "component" .component) }}
automountServiceAccountToken: true
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .values.affinity }}
affinity:
  {{- toYaml .values.affinity | nindent 2 }}
{{- else }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "ds.selectorLabels" (dict "root" .root "component" .component) | nindent 14 }}
{{- end }}
{{- end }}

{{/* Container-level settings shared by every component. */}}
{{- define "ds.containerCommon" -}}
image: {{ include "ds.image" .root }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
securityContext:
  {{- toYaml .root.Values.containerSecurityContext | nindent 2 }}
resources:
  {{- toYaml .values.resources | nindent 2 }}
{{- end }}

{{/* Environment every component gets. */}}
{{- define "ds.envCommon" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- with .values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
