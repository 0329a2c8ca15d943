{{/* Names, labels and the pieces every OET Pod shares. */}}

{{- define "oet.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "oet.labels" -}}
app.kubernetes.io/name: oet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* Selector labels of one component: call with (list $ "api"). */}}
{{- define "oet.selector" -}}
app.kubernetes.io/name: oet
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Object names: the release name, with "-oet" unless it already says oet (oet-api). */}}
{{- define "oet.fullname" -}}
{{- if contains "oet" .Release.Name }}{{ .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}{{ printf "%s-oet" .Release.Name | trunc 50 | trimSuffix "-" }}{{ end }}
{{- end }}

{{- define "oet.configName" -}}
{{ include "oet.fullname" . }}-config
{{- end }}

{{/* The restricted Pod Security Standard, for Pods and containers. */}}
{{- define "oet.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "oet.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Pod-level settings shared by the API and operator Pods. */}}
{{- define "oet.podShared" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.pods.hostNetwork }}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
{{- with .Values.pods.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.pods.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.pods.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "oet.podSecurityContext" . | nindent 2 }}
{{- end }}

{{/* Environment of the API and operator containers: where oet.ini is, plus extraEnv. */}}
{{- define "oet.env" -}}
- name: OET_CONFIG_FILE
  value: /etc/oet/oet.ini
{{- range $name, $value := .Values.pods.extraEnv }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* The scripts volume, when scripts do not come from the image (a dict, for toJson too). */}}
{{- define "oet.scriptsVolume" -}}
{{- $s := .Values.scripts -}}
{{- if eq $s.source "configMap" -}}
{{ toJson (dict "name" "scripts" "configMap" (dict "name" $s.configMapName)) }}
{{- else if eq $s.source "persistentVolumeClaim" -}}
{{ toJson (dict "name" "scripts" "persistentVolumeClaim" (dict "claimName" $s.claimName "readOnly" true)) }}
{{- end -}}
{{- end }}

{{- define "oet.volumes" -}}
- name: config
  configMap:
    name: {{ include "oet.configName" . }}
- name: tmp
  emptyDir: {}
{{- with include "oet.scriptsVolume" . }}
- {{- fromJson . | toYaml | nindent 2 }}
{{- end }}
{{- end }}

{{- define "oet.volumeMounts" -}}
- name: config
  mountPath: /etc/oet
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if ne .Values.scripts.source "image" }}
- name: scripts
  mountPath: {{ .Values.scripts.mountPath }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
runner_pod_overrides: the shared Pod settings and the scripts volume, then the user's
podOverrides. Named lists (volumes, containers) are concatenated: the operator merges items
with the same name, so a user's "runner" container adds to ours.
*/}}
{{- define "oet.runnerPodOverrides" -}}
{{- $spec := dict -}}
{{- if .Values.pods.hostNetwork }}{{ $_ := set $spec "hostNetwork" true }}{{ $_ := set $spec "dnsPolicy" "ClusterFirstWithHostNet" }}{{ end -}}
{{- with .Values.pods.tolerations }}{{ $_ := set $spec "tolerations" . }}{{ end -}}
{{- with .Values.pods.nodeSelector }}{{ $_ := set $spec "nodeSelector" . }}{{ end -}}
{{- with .Values.imagePullSecrets }}{{ $_ := set $spec "imagePullSecrets" . }}{{ end -}}
{{- $container := dict "name" "runner" -}}
{{- $env := list -}}
{{- range $name, $value := .Values.pods.extraEnv }}{{ $env = append $env (dict "name" $name "value" (toString $value)) }}{{ end -}}
{{- if $env }}{{ $_ := set $container "env" $env }}{{ end -}}
{{- $volumes := list -}}
{{- with include "oet.scriptsVolume" . -}}
{{- $volumes = append $volumes (fromJson .) -}}
{{- $_ := set $container "volumeMounts" (list (dict "name" "scripts" "mountPath" $.Values.scripts.mountPath "readOnly" true)) -}}
{{- end -}}
{{- $user := deepCopy .Values.runner.podOverrides -}}
{{- $userSpec := get $user "spec" | default dict -}}
{{- $volumes = concat $volumes (get $userSpec "volumes" | default list) -}}
{{- $containers := list -}}
{{- if gt (len (keys $container)) 1 }}{{ $containers = list $container }}{{ end -}}
{{- $containers = concat $containers (get $userSpec "containers" | default list) -}}
{{- $spec = mergeOverwrite $spec (omit $userSpec "volumes" "containers") -}}
{{- if $volumes }}{{ $_ := set $spec "volumes" $volumes }}{{ end -}}
{{- if $containers }}{{ $_ := set $spec "containers" $containers }}{{ end -}}
{{- $result := omit $user "spec" -}}
{{- if $spec }}{{ $_ := set $result "spec" $spec }}{{ end -}}
{{ toJson $result }}
{{- end }}

{{/* oet.ini values: configparser interpolates %, so it is doubled. */}}
{{- define "oet.ini" -}}
{{- range $name, $value := . }}
{{ $name }} = {{ (or (kindIs "map" $value) (kindIs "slice" $value)) | ternary (toJson $value) (toString $value) | replace "%" "%%" }}
{{- end }}
{{- end }}
