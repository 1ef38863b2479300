{{/*
Names, labels and the small computed values every template shares.
*/}}

{{- define "smictl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name, plus the chart name unless the release name already holds it.
`helm install smictl charts/smictl` gives "smictl", which is where the CRDs in crds/ point.
*/}}
{{- define "smictl.fullname" -}}
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

{{- define "smictl.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "smictl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "smictl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "smictl.labels" -}}
helm.sh/chart: {{ include "smictl.chart" . }}
{{ include "smictl.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: smictl
{{- end }}

{{- define "smictl.serviceAccountName" -}}
{{- if .Values.controlPlane.serviceAccount.create }}
{{- default (include "smictl.fullname" .) .Values.controlPlane.serviceAccount.name }}
{{- else }}
{{- required "controlPlane.serviceAccount.name is required when serviceAccount.create is false" .Values.controlPlane.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The user name the API server gives the control plane (always admitted by it). */}}
{{- define "smictl.username" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "smictl.serviceAccountName" .) }}
{{- end }}

{{/* Where injected proxies reach the control plane (policy long poll, certificate signing). */}}
{{- define "smictl.controlPlaneURL" -}}
{{- printf "https://%s.%s.svc:%d" (include "smictl.fullname" .) .Release.Namespace (int .Values.controlPlane.service.port) }}
{{- end }}

{{- define "smictl.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "smictl.proxyImage" -}}
{{- $repo := default .Values.image.repository .Values.proxy.image.repository }}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) .Values.proxy.image.tag }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}

{{/* Secrets and certificate names. */}}
{{- define "smictl.servingSecret" -}}
{{- printf "%s-webhook-tls" (include "smictl.fullname" .) }}
{{- end }}

{{- define "smictl.servingCASecret" -}}
{{- printf "%s-webhook-ca" (include "smictl.fullname" .) }}
{{- end }}

{{- define "smictl.servingCertificate" -}}
{{- printf "%s-webhook" (include "smictl.fullname" .) }}
{{- end }}

{{- define "smictl.meshCASecret" -}}
{{- default (printf "%s-mesh-ca" (include "smictl.fullname" .)) .Values.certificates.meshCA.existingSecret }}
{{- end }}

{{- define "smictl.validatingWebhook" -}}
{{- include "smictl.fullname" . }}
{{- end }}

{{- define "smictl.mutatingWebhook" -}}
{{- printf "%s-injector" (include "smictl.fullname" .) }}
{{- end }}

{{/* DNS names of the control plane Service, as the API server and the proxies address it. */}}
{{- define "smictl.serviceDNSNames" -}}
{{- $svc := include "smictl.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{/* Namespaces the webhooks never see: kube-system, the release namespace, and the user's. */}}
{{- define "smictl.excludedNamespaces" -}}
{{- concat (list "kube-system" .Release.Namespace) .Values.mesh.excludedNamespaces | uniq | toJson }}
{{- end }}

{{/* The SMI CRDs whose conversion webhook the certificate Jobs point at this release. */}}
{{- define "smictl.conversionCRDs" -}}
{{- list "traffictargets.access.smi-spec.io" "httproutegroups.specs.smi-spec.io" "tcproutes.specs.smi-spec.io" "trafficsplits.split.smi-spec.io" | toJson }}
{{- end }}

{{/* Hardened security contexts shared by every smictl container. */}}
{{- define "smictl.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "smictl.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
    - ALL
{{- end }}

{{/*
The shipped Rego under files/policies (a copy of the repo's policies/, tests left out).
ConfigMap keys cannot hold "/", so each file is stored under its path with "/" -> "__" and
projected back to its path by the volume's items.
*/}}
{{- define "smictl.policyFiles" -}}
{{- $files := list }}
{{- range $path, $_ := .Files.Glob "files/policies/**.rego" }}
{{- if not (hasSuffix "_test.rego" $path) }}
{{- $files = append $files $path }}
{{- end }}
{{- end }}
{{- toJson $files }}
{{- end }}

{{- define "smictl.policyItems" -}}
{{- $files := include "smictl.policyFiles" . | fromJsonArray }}
{{- if $files -}}
items:
{{- range $files }}
  - key: {{ trimPrefix "files/policies/" . | replace "/" "__" }}
    path: {{ trimPrefix "files/policies/" . }}
{{- end }}
{{- end }}
{{- end }}
