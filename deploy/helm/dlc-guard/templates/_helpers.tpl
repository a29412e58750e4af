{{/* Names ------------------------------------------------------------------------------ */}}
{{- define "dlc-guard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dlc-guard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "dlc-guard.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "dlc-guard.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "dlc-guard.webhook.fullname" -}}
{{- printf "%s-webhook" (include "dlc-guard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dlc-guard.operator.fullname" -}}
{{- printf "%s-operator" (include "dlc-guard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dlc-guard.tls.secret" -}}
{{- if eq .Values.tls.mode "secret" }}{{ .Values.tls.existingSecret }}{{ else }}{{ include "dlc-guard.webhook.fullname" . }}-tls{{ end }}
{{- end }}

{{/* Labels ----------------------------------------------------------------------------- */}}
{{- define "dlc-guard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "dlc-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dlc-guard
{{- end }}

{{- define "dlc-guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dlc-guard.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The image, by digest when one is given --------------------------------------------- */}}
{{- define "dlc-guard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Fail in enforce mode, Ignore otherwise, unless chosen explicitly --------------------- */}}
{{- define "dlc-guard.failurePolicy" -}}
{{- if .Values.webhook.failurePolicy }}{{ .Values.webhook.failurePolicy }}
{{- else if eq .Values.policy.mode "enforce" }}Fail
{{- else }}Ignore
{{- end }}
{{- end }}

{{/* Namespaces the API server never sends: the release namespace (dlc-guard's own pods live
     there, so the webhook never has to admit its own replacement), the excluded ones, and any
     namespace labelled with the ignore label. Only who may edit Namespace objects (cluster
     admins, not namespace users) can set that label. There is no objectSelector: a workload's
     owner writes its labels, so a label on the object must never switch judgement off. */}}
{{- define "dlc-guard.webhook.namespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: {{ concat (list .Release.Namespace) .Values.webhook.excludeNamespaces | uniq | toJson }}
  - key: {{ .Values.webhook.ignoreLabel }}
    operator: NotIn
    values: ["true"]
{{- end }}

{{- define "dlc-guard.webhook.rules" -}}
- apiGroups: [""]
  apiVersions: [v1]
  operations: [CREATE, UPDATE]
  # pods/ephemeralcontainers: `kubectl debug` adds containers through that subresource
  resources: [pods, pods/ephemeralcontainers, replicationcontrollers, podtemplates]
  scope: Namespaced
- apiGroups: [apps]
  apiVersions: [v1]
  operations: [CREATE, UPDATE]
  resources: [deployments, replicasets, statefulsets, daemonsets]
  scope: Namespaced
- apiGroups: [batch]
  apiVersions: [v1]
  operations: [CREATE, UPDATE]
  resources: [jobs, cronjobs]
  scope: Namespaced
{{- range .Values.webhook.extraRules }}
- apiGroups: {{ toJson .apiGroups }}
  apiVersions: {{ toJson (default (list "*") .apiVersions) }}
  operations: [CREATE, UPDATE]
  resources: {{ toJson .resources }}
  scope: Namespaced
{{- end }}
{{- end }}

{{- define "dlc-guard.webhook.matchConditions" -}}
{{- if .Values.webhook.matchConditions -}}
matchConditions:
  - name: not-dlc-guard-operator
    expression: "request.userInfo.username != 'system:serviceaccount:{{ .Release.Namespace }}:{{ include "dlc-guard.operator.fullname" . }}'"
  - name: images-may-change
    expression: >-
      request.operation != 'UPDATE' ||
      (has(object.spec) ? (!has(oldObject.spec) || object.spec != oldObject.spec) :
      (!has(object.template) || !has(oldObject.template) || object.template != oldObject.template))
{{- end }}
{{- end }}

{{/* Pod scheduling and security shared by both Deployments ------------------------------ */}}
{{- define "dlc-guard.podSecurity" -}}
securityContext: {{ toJson .Values.podSecurityContext }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{ toJson . }}
{{- end }}
{{- end }}

{{/* Digest lookups: the same options and Secrets for both components ------------------- */}}
{{- define "dlc-guard.digests.configMap" -}}
{{- printf "%s-digests" (include "dlc-guard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dlc-guard.digests.args" -}}
{{- if .Values.digests.resolve }}
- --resolve-digests
- --digest-cache=none
- --digest-configmap={{ include "dlc-guard.digests.configMap" . }}
{{- range .Values.digests.pullSecrets }}
- --registry-auth=/etc/dlc-guard/registry/{{ . }}/.dockerconfigjson
{{- end }}
{{- end }}
{{- end }}

{{- define "dlc-guard.digests.mounts" -}}
{{- if .Values.digests.resolve }}
{{- range .Values.digests.pullSecrets }}
- {name: "pull-{{ . }}", mountPath: "/etc/dlc-guard/registry/{{ . }}", readOnly: true}
{{- end }}
{{- end }}
{{- end }}

{{- define "dlc-guard.digests.volumes" -}}
{{- if .Values.digests.resolve }}
{{- range .Values.digests.pullSecrets }}
- name: "pull-{{ . }}"
  secret: {secretName: {{ . | quote }}}
{{- end }}
{{- end }}
{{- end }}
