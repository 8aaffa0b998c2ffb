{{- define "hookgate.fullname" -}}
{{- if contains "hookgate" .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-hookgate" .Release.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "hookgate.labels" -}}
app.kubernetes.io/name: hookgate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "hookgate.selector" -}}
app.kubernetes.io/name: hookgate
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "hookgate.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Restricted Pod Security: non-root, read-only root, no escalation, no capabilities. */}}
{{- define "hookgate.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "hookgate.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "hookgate.receiver.name" -}}
{{ printf "%s-receiver" (include "hookgate.fullname" .) }}
{{- end -}}

{{/* The receiver's pod spec, shared by the StatefulSet (embedded store) and the Deployment
     (PostgreSQL store). Only the PostgreSQL store adds to it: the database Secret, the
     status Lease's name, an emptyDir for the routing table's disk copy and the spread. */}}
{{- define "hookgate.receiver.podSpec" -}}
{{- $name := include "hookgate.receiver.name" . -}}
{{- $postgres := eq .Values.store.type "postgres" -}}
{{- $pg := .Values.store.postgres -}}
serviceAccountName: {{ $name }}
terminationGracePeriodSeconds: 30
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
securityContext: {{- include "hookgate.podSecurityContext" . | nindent 2 }}
{{- if and $postgres .Values.receiver.topologySpread.enabled }}
# Best effort: replicas in different zones and on different nodes when there is room.
topologySpreadConstraints:
  {{- range $key := list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
  - maxSkew: 1
    topologyKey: {{ $key }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels: {{- include "hookgate.selector" $ | nindent 8 }}
        app.kubernetes.io/component: receiver
  {{- end }}
{{- end }}
containers:
  - name: receiver
    image: {{ include "hookgate.image" . }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    args:
      - receiver
      - --namespace={{ .Release.Namespace }}
      - --data-dir=/var/lib/hookgate
      {{- if not $postgres }}
      - --embedded-engine={{ .Values.store.embedded.engine }}
      {{- end }}
      - --listen=:8080
      - --api-listen=:8443
      - --api-cert-dir=/var/run/hookgate/events-api-tls
      - --probe-listen=:8081
      - --store-retention={{ .Values.receiver.storeRetention }}
      {{- with .Values.receiver.trustedProxies }}
      - --trusted-proxies={{ join "," . }}
      {{- end }}
      {{- if .Values.receiver.allowLinkLocalDestinations }}
      - --allow-link-local-destinations
      {{- end }}
      {{- with .Values.receiver.destinationAllowCIDRs }}
      - --destination-allow-cidrs={{ join "," . }}
      {{- end }}
      {{- with include "hookgate.receiver.publicURL" . }}
      - --public-url={{ . }}
      {{- end }}
      {{- if $postgres }}
      {{- if ne $name "hookgate-receiver" }}
      {{- /* The binary's default is hookgate-receiver-status; the Role names this one. */}}
      - --status-lease={{ $name }}-status
      {{- end }}
      {{- if $pg.passwordKey }}
      - --database-password-file=/etc/hookgate/database/password
      {{- end }}
      {{- end }}
    env:
      - name: POD_NAME
        valueFrom: {fieldRef: {fieldPath: metadata.name}}
      # The egress policy refuses the pod's own addresses as destinations.
      - name: POD_IP
        valueFrom: {fieldRef: {fieldPath: status.podIP}}
      {{- if $postgres }}
      # The PostgreSQL store: the URL stays in the Secret, out of the pod spec and argv.
      - name: HOOKGATE_DATABASE_URL
        valueFrom:
          secretKeyRef:
            name: {{ required "store.postgres.existingSecret is required with store.type=postgres" $pg.existingSecret | quote }}
            key: {{ $pg.urlKey | default "url" | quote }}
      {{- end }}
    ports:
      - {name: http, containerPort: 8080}
      - {name: probes, containerPort: 8081}
      - {name: events-api, containerPort: 8443}
    {{- if not $postgres }}
    # The store opens before the probes answer: converting a large events.db left by a
    # release on bbolt to Pebble can take minutes, and a liveness probe would restart
    # the conversion.
    startupProbe:
      httpGet: {path: /healthz, port: probes}
      periodSeconds: 10
      failureThreshold: 360
    {{- end }}
    livenessProbe:
      httpGet: {path: /healthz, port: probes}
    readinessProbe:
      httpGet: {path: /readyz, port: probes}
    securityContext: {{- include "hookgate.containerSecurityContext" . | nindent 6 }}
    resources: {{- toYaml .Values.receiver.resources | nindent 6 }}
    volumeMounts:
      - {name: data, mountPath: /var/lib/hookgate}
      - {name: events-api-tls, mountPath: /var/run/hookgate/events-api-tls, readOnly: true}
      {{- if and $postgres $pg.passwordKey }}
      - {name: database-password, mountPath: /etc/hookgate/database, readOnly: true}
      {{- end }}
volumes:
  # The events API's serving certificate, made and renewed by the operator (optional: on
  # a first install the receiver waits for it).
  - name: events-api-tls
    secret:
      secretName: {{ include "hookgate.receiver.name" . }}-events-api-tls
      optional: true
      items:
        - {key: tls.crt, path: tls.crt}
        - {key: tls.key, path: tls.key}
      defaultMode: 0440
{{- if $postgres }}
  # Only the routing table's disk copy lives here (the root filesystem is read-only):
  # the events are in PostgreSQL, so the pod needs no volume of its own.
  - name: data
    emptyDir: {}
  {{- if $pg.passwordKey }}
  - name: database-password
    secret:
      secretName: {{ $pg.existingSecret | quote }}
      items:
        - {key: {{ $pg.passwordKey | quote }}, path: password}
      defaultMode: 0440
  {{- end }}
{{- end }}
{{- end -}}

{{/* The receiver's public URL (the issuer of JWT-signed deliveries): receiver.publicURL,
     else the ingress host, https when the ingress has TLS. */}}
{{- define "hookgate.receiver.publicURL" -}}
{{- if .Values.receiver.publicURL -}}
{{- trimSuffix "/" .Values.receiver.publicURL -}}
{{- else if and .Values.ingress.enabled .Values.ingress.host -}}
{{- if .Values.ingress.tls.secretName }}https{{ else }}http{{ end }}://{{ .Values.ingress.host -}}
{{- end -}}
{{- end }}
