{{/*
Pieces shared by the certificate hook Jobs and the rotation CronJob (files/certs_job.py).
*/}}

{{- define "smictl.certsArgs" -}}
- --namespace={{ .Release.Namespace }}
- --service={{ include "smictl.fullname" . }}
- --service-port={{ .Values.controlPlane.service.port }}
{{- range include "smictl.serviceDNSNames" . | fromJsonArray }}
- --dns={{ . }}
{{- end }}
- --serving-secret={{ include "smictl.servingSecret" . }}
- --ca-secret={{ include "smictl.servingCASecret" . }}
{{- if not .Values.certificates.meshCA.existingSecret }}
- --mesh-ca-secret={{ include "smictl.meshCASecret" . }}
{{- end }}
- --validating-webhook={{ include "smictl.validatingWebhook" . }}
{{- if .Values.webhook.injector.enabled }}
- --mutating-webhook={{ include "smictl.mutatingWebhook" . }}
{{- end }}
{{- range include "smictl.conversionCRDs" . | fromJsonArray }}
- --crd={{ . }}
{{- end }}
- --provider={{ .Values.certificates.provider }}
- --certificate={{ include "smictl.servingCertificate" . }}
- --renew-before-days={{ .Values.certificates.job.renewBeforeDays }}
- --ca-renew-before-days={{ .Values.certificates.job.caRenewBeforeDays }}
- --ready-timeout={{ .Values.certificates.job.readyTimeoutSeconds }}
{{- end }}

{{/* Cluster-scoped rights: only our own webhook configurations and the SMI CRDs, by name. */}}
{{- define "smictl.certsClusterRules" -}}
{{- $verbs := list "get" }}
{{- if eq .Values.certificates.provider "job" }}
{{- $verbs = list "get" "update" }}
{{- end }}
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingwebhookconfigurations"]
  resourceNames: [{{ include "smictl.validatingWebhook" . | quote }}]
  verbs: {{ toJson $verbs }}
{{- if .Values.webhook.injector.enabled }}
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["mutatingwebhookconfigurations"]
  resourceNames: [{{ include "smictl.mutatingWebhook" . | quote }}]
  verbs: {{ toJson $verbs }}
{{- end }}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  resourceNames: {{ include "smictl.conversionCRDs" . }}
  verbs: ["get", "update"]
{{- end }}

{{/* Namespaced rights: create Secrets (create cannot be limited by name), read and update ours. */}}
{{- define "smictl.certsSecretRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames:
    - {{ include "smictl.servingSecret" . }}
    - {{ include "smictl.servingCASecret" . }}
    {{- if not .Values.certificates.meshCA.existingSecret }}
    - {{ include "smictl.meshCASecret" . }}
    {{- end }}
  verbs: ["get", "update"]
{{- end }}

{{/*
Pod spec of a certificates run. Call with (dict "root" $ "phase" "prepare" "name" "<sa and
configmap name>" "restartPolicy" "Never").
*/}}
{{- define "smictl.certsPodSpec" -}}
{{- $root := .root -}}
serviceAccountName: {{ .name }}
restartPolicy: {{ .restartPolicy }}
securityContext:
  {{- include "smictl.podSecurityContext" $root | nindent 2 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with $root.Values.controlPlane.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.controlPlane.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: certs
    image: {{ include "smictl.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    command: ["python3", "/scripts/certs_job.py", {{ .phase | quote }}]
    args:
      {{- include "smictl.certsArgs" $root | nindent 6 }}
    env:
      - name: PYTHONDONTWRITEBYTECODE
        value: "1"
      # smictl resolves its default state directory from HOME at start; uid 65532 has no
      # passwd entry, and the root filesystem is read-only.
      - name: HOME
        value: /tmp
    resources:
      {{- toYaml $root.Values.certificates.job.resources | nindent 6 }}
    securityContext:
      {{- include "smictl.containerSecurityContext" $root | nindent 6 }}
    volumeMounts:
      - name: scripts
        mountPath: /scripts
        readOnly: true
      - name: tmp
        mountPath: /tmp
volumes:
  - name: scripts
    configMap:
      name: {{ .name }}
  - name: tmp
    emptyDir:
      sizeLimit: 16Mi
{{- end }}

{{/* ServiceAccount, RBAC and script ConfigMap for a certificates run; `annotations` are the
hook annotations (empty for the CronJob's long-lived copy). */}}
{{- define "smictl.certsAccess" -}}
{{- $root := .root }}
{{- $labels := include "smictl.labels" $root }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
    app.kubernetes.io/component: certificates
  {{- with .annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
    app.kubernetes.io/component: certificates
  {{- with .annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
data:
  certs_job.py: |
    {{- $root.Files.Get "files/certs_job.py" | nindent 4 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ .name }}
  labels:
    {{- $labels | nindent 4 }}
    app.kubernetes.io/component: certificates
  {{- with .annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
rules:
  {{- include "smictl.certsClusterRules" $root | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ .name }}
  labels:
    {{- $labels | nindent 4 }}
    app.kubernetes.io/component: certificates
  {{- with .annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ .name }}
subjects:
  - kind: ServiceAccount
    name: {{ .name }}
    namespace: {{ $root.Release.Namespace }}
{{- if eq $root.Values.certificates.provider "job" }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
    app.kubernetes.io/component: certificates
  {{- with .annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
rules:
  {{- include "smictl.certsSecretRules" $root | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
    app.kubernetes.io/component: certificates
  {{- with .annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ .name }}
subjects:
  - kind: ServiceAccount
    name: {{ .name }}
    namespace: {{ $root.Release.Namespace }}
{{- end }}
{{- end }}
