{{- define "tapline.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-tapline-<role>, or <release>-<role> when the release name holds "tapline". */}}
{{- define "tapline.fullname" -}}
{{- $role := .Values.role | replace "sidecar-example" "kong" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- printf "%s-%s" .Release.Name $role | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s-%s" .Release.Name .Chart.Name $role | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tapline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tapline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .Values.role }}
{{- end -}}

{{- define "tapline.labels" -}}
{{ include "tapline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tapline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tapline.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tapline.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{/* The pipeline: customConfig as TOML, else the role's own file. */}}
{{- define "tapline.config" -}}
{{- if .Values.customConfig -}}
{{ toToml .Values.customConfig }}
{{- else -}}
{{ .Files.Get (printf "files/%s.toml" (.Values.role | replace "sidecar-example" "kong-sidecar")) }}
{{- end -}}
{{- end -}}

{{/* The ports of the role, as name → number. */}}
{{- define "tapline.rolePorts" -}}
{{- if eq .Values.role "aggregator" -}}
- {name: api, port: 8686}
- {name: otlp-grpc, port: 4317}
- {name: otlp-http, port: 4318}
- {name: kong-http-log, port: 8080}
- {name: remote-write, port: 9090}
{{- else if eq .Values.role "sidecar-example" -}}
- {name: proxy, port: 8000}
- {name: api, port: 8686}
- {name: metrics, port: 9598}
{{- else -}}
- {name: api, port: 8686}
- {name: metrics, port: 9598}
{{- end -}}
{{- end -}}

{{- define "tapline.servicePorts" -}}
{{- if .Values.service.ports -}}
{{ toYaml .Values.service.ports }}
{{- else -}}
{{ include "tapline.rolePorts" . }}
{{- end -}}
{{- end -}}

{{- define "tapline.serviceEnabled" -}}
{{- if kindIs "bool" .Values.service.enabled -}}
{{- .Values.service.enabled -}}
{{- else -}}
{{- ne .Values.role "agent" -}}
{{- end -}}
{{- end -}}

{{/* The container's security context: the user's, else the role's. */}}
{{- define "tapline.securityContext" -}}
{{- if .Values.securityContext -}}
{{ toYaml .Values.securityContext }}
{{- else if eq .Values.role "agent" -}}
# Root, for the capabilities to take effect, with only these (docs/deploying.md):
#   BPF      load the eBPF programs and create their maps and ring buffer
#   PERFMON  attach them to tracepoints and uprobes; let them read memory
# (ssl_libraries under /proc/PID/root, another container's OpenSSL, also need SYS_PTRACE.)
runAsUser: 0
runAsNonRoot: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
  add: [BPF, PERFMON]
# Some runtimes' default seccomp profiles (podman's) allow the bpf() call only
# with SYS_ADMIN: unconfined here rather than that capability.
seccompProfile:
  type: Unconfined
{{- else -}}
runAsUser: 65532
runAsGroup: 65532
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
{{- end -}}

{{/* The tapline container, shared by every role. */}}
{{- define "tapline.container" -}}
- name: tapline
  image: {{ include "tapline.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: [run]
  env:
    - name: TAPLINE_DATA_DIR
      value: {{ .Values.dataDir | quote }}
    - name: NODE_NAME
      valueFrom:
        fieldRef:
          fieldPath: spec.nodeName
    {{- if .Values.aggregatorAddress }}
    - name: TAPLINE_AGGREGATOR
      value: {{ .Values.aggregatorAddress | quote }}
    {{- end }}
    {{- with .Values.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    {{- range (include "tapline.rolePorts" . | fromYamlArray) }}
    {{- if ne .name "proxy" }}
    - name: {{ .name }}
      containerPort: {{ .port }}
      protocol: TCP
    {{- end }}
    {{- end }}
  {{- with .Values.livenessProbe }}
  livenessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.readinessProbe }}
  readinessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "tapline.securityContext" . | nindent 4 }}
  volumeMounts:
    - name: config
      mountPath: /etc/tapline
      readOnly: true
    - name: data
      mountPath: {{ .Values.dataDir }}
    - name: tmp
      mountPath: /tmp
    {{- if eq .Values.role "agent" }}
    - name: btf
      mountPath: /sys/kernel/btf
      readOnly: true
    {{- end }}
    {{- if eq .Values.role "sidecar-example" }}
    - name: kong-logs
      mountPath: /var/log/kong
      readOnly: true
    {{- end }}
    {{- with .Values.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* The volumes every role has: the pipeline, /tmp, the user's. */}}
{{- define "tapline.volumes" -}}
- name: config
  {{- if .Values.existingConfigMaps }}
  projected:
    sources:
      {{- range .Values.existingConfigMaps }}
      - configMap:
          name: {{ . }}
      {{- end }}
  {{- else }}
  configMap:
    name: {{ include "tapline.fullname" . }}
  {{- end }}
- name: tmp
  emptyDir: {}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod-level settings every role shares. */}}
{{- define "tapline.podSpecCommon" -}}
serviceAccountName: {{ include "tapline.serviceAccountName" . }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
{{- with .Values.podPriorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "tapline.podMetadata" -}}
labels:
  {{- include "tapline.selectorLabels" . | nindent 2 }}
  {{- with .Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  # A new pipeline rolls the pods (tapline also reloads on SIGHUP, but a ConfigMap update reaches a pod late).
  checksum/config: {{ include "tapline.config" . | sha256sum }}
  {{- with .Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}
