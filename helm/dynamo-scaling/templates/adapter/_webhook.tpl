{{/* The adapter's webhooks (CRD conversion between v1alpha1 and v1beta1, validating admission):
     names, the serving-certificate source, and its CA bundle. Used by crds.yaml,
     adapter/webhook.yaml, adapter/deployment.yaml and networkpolicy.yaml. */}}

{{/* "true" when the adapter serves its webhooks (and the chart's CRDs serve v1beta1). */}}
{{- define "ds.adapterWebhookOn" -}}
{{- if and .Values.adapter.enabled .Values.adapter.webhook.enabled }}true{{ end }}
{{- end }}

{{- define "ds.adapterWebhookService" -}}
{{- include "ds.componentName" (dict "root" . "component" "adapter-webhook") }}
{{- end }}

{{/* Where the serving certificate comes from: certManager, secret (an existing Secret named by
     adapter.webhook.certSecret) or generate (Helm makes a CA and certificate once and keeps them). */}}
{{- define "ds.adapterWebhookCertMode" -}}
{{- $w := .Values.adapter.webhook }}
{{- if and $w.certManager.enabled $w.certSecret }}
{{- fail "adapter.webhook: set either certManager.enabled or certSecret, not both" }}
{{- end }}
{{- if $w.certManager.enabled }}certManager{{ else if $w.certSecret }}secret{{ else }}generate{{ end }}
{{- end }}

{{- define "ds.adapterWebhookSecret" -}}
{{- default (include "ds.componentName" (dict "root" . "component" "adapter-webhook-tls")) .Values.adapter.webhook.certSecret }}
{{- end }}

{{/* The generated certificate as YAML {crt, key, ca} (base64), made once per render and shared by
     every template that needs it (each template would otherwise generate its own CA); an
     existing Secret from an earlier install is reused so upgrades keep the CA. */}}
{{- define "ds.adapterWebhookGenerated" -}}
{{- $w := .Values.adapter.webhook }}
{{- if not (hasKey $w "_generatedTLS") }}
{{- $svc := include "ds.adapterWebhookService" . }}
{{- $ns := .Release.Namespace }}
{{- $tls := dict }}
{{- $existing := lookup "v1" "Secret" $ns (include "ds.adapterWebhookSecret" .) }}
{{- if and $existing $existing.data (hasKey $existing.data "ca.crt") }}
{{- $tls = dict "crt" (index $existing.data "tls.crt") "key" (index $existing.data "tls.key") "ca" (index $existing.data "ca.crt") }}
{{- else }}
{{- $dnsNames := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) }}
{{- $caCert := genCA (printf "%s-ca" $svc) (int $w.validityDays) }}
{{- $cert := genSignedCert (printf "%s.%s.svc" $svc $ns) nil $dnsNames (int $w.validityDays) $caCert }}
{{- $tls = dict "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc) "ca" ($caCert.Cert | b64enc) }}
{{- end }}
{{- $_ := set $w "_generatedTLS" $tls }}
{{- end }}
{{- toYaml (get $w "_generatedTLS") }}
{{- end }}

{{/* caBundle for the CRDs' conversion and the ValidatingWebhookConfiguration; empty with
     cert-manager, whose CA injector fills it in (cert-manager.io/inject-ca-from). */}}
{{- define "ds.adapterWebhookCABundle" -}}
{{- $mode := include "ds.adapterWebhookCertMode" . }}
{{- if eq $mode "generate" }}
{{- (include "ds.adapterWebhookGenerated" . | fromYaml).ca }}
{{- else if eq $mode "secret" }}
{{- if not .Values.adapter.webhook.caBundle }}
{{- fail "adapter.webhook.certSecret needs adapter.webhook.caBundle (base64 PEM of the CA that signed the certificate) so the API server can verify the adapter" }}
{{- end }}
{{- .Values.adapter.webhook.caBundle }}
{{- end }}
{{- end }}

{{/* clientConfig of one webhook path: (dict "root" $ "path" "/convert"). */}}
{{- define "ds.adapterWebhookClientConfig" -}}
service:
  namespace: {{ .root.Release.Namespace }}
  name: {{ include "ds.adapterWebhookService" .root }}
  path: {{ .path }}
  port: {{ .root.Values.adapter.webhook.servicePort }}
{{- with include "ds.adapterWebhookCABundle" .root }}
caBundle: {{ . }}
{{- end }}
{{- end }}

{{/* The cert-manager annotation that injects the CA, when cert-manager issues the certificate. */}}
{{- define "ds.adapterWebhookInjectCA" -}}
{{- if eq (include "ds.adapterWebhookCertMode" .) "certManager" }}
cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "ds.adapterWebhookService" . }}
{{- end }}
{{- end }}
