{{/* Names ------------------------------------------------------------------------------- */}}

{{- define "kuberelay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every resource name; short enough for "-relay-POOL" suffixes. */}}
{{- define "kuberelay.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kuberelay.operatorName" -}}{{ include "kuberelay.fullname" . }}-operator{{- end -}}
{{- define "kuberelay.policyServiceName" -}}{{ include "kuberelay.fullname" . }}-policy{{- end -}}
{{- define "kuberelay.operatorMetricsServiceName" -}}{{ include "kuberelay.fullname" . }}-operator-metrics{{- end -}}
{{- define "kuberelay.relayMetricsServiceName" -}}{{ include "kuberelay.fullname" . }}-relay-metrics{{- end -}}
{{- define "kuberelay.serverSecretName" -}}{{ include "kuberelay.fullname" . }}-policy-server{{- end -}}
{{- define "kuberelay.clientSecretName" -}}{{ include "kuberelay.fullname" . }}-policy-client{{- end -}}

{{- define "kuberelay.leaseName" -}}
{{- default (include "kuberelay.operatorName" .) .Values.operator.leaderElection.leaseName -}}
{{- end -}}

{{- define "kuberelay.operatorServiceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "kuberelay.operatorName" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kuberelay.relayServiceAccountName" -}}
{{- if .Values.relay.serviceAccount.create -}}
{{- default (printf "%s-relay" (include "kuberelay.fullname" .)) .Values.relay.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.relay.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The policy Service's DNS name the relays dial (and the server certificate names). */}}
{{- define "kuberelay.policyServiceHost" -}}
{{ include "kuberelay.policyServiceName" . }}.{{ .Release.Namespace }}.svc
{{- end -}}

{{- define "kuberelay.policyDNSNames" -}}
{{- $svc := include "kuberelay.policyServiceName" . -}}
{{- $ns := .Release.Namespace -}}
{{- concat (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain)) .Values.policyTLS.extraDNSNames | toJson -}}
{{- end -}}

{{/* Labels ------------------------------------------------------------------------------ */}}

{{- define "kuberelay.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "kuberelay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kuberelay
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "kuberelay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kuberelay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kuberelay.operatorSelectorLabels" -}}
{{ include "kuberelay.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Every relay of every pool. */}}
{{- define "kuberelay.relaySelectorLabels" -}}
{{ include "kuberelay.selectorLabels" . }}
app.kubernetes.io/component: relay
{{- end -}}

{{/* Images ------------------------------------------------------------------------------ */}}

{{/* (dict "image" .Values.operator.image "root" $) */}}
{{- define "kuberelay.image" -}}
{{- if .image.digest -}}
{{ .image.repository }}@{{ .image.digest }}
{{- else -}}
{{ .image.repository }}:{{ default .root.Chart.AppVersion .image.tag }}
{{- end -}}
{{- end -}}

{{/* Security ---------------------------------------------------------------------------- */}}

{{- define "kuberelay.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "kuberelay.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Relay pools -------------------------------------------------------------------------- */}}

{{/* Recursive merge of .src into .dst (mutates .dst): maps merge key by key, anything else
     (lists, scalars, false, 0) replaces. Unlike mergeOverwrite, false and 0 do override. */}}
{{- define "kuberelay.deepMerge" -}}
{{- $dst := .dst -}}
{{- range $key, $value := .src -}}
{{- if and (kindIs "map" $value) (kindIs "map" (get $dst $key)) -}}
{{- include "kuberelay.deepMerge" (dict "dst" (get $dst $key) "src" $value) -}}
{{- else -}}
{{- $_ := set $dst $key $value -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A YAML list of every pool: `relay` itself (name: relay.pool), then each extraPools entry
     merged over `relay`. Each gets name, resourceName (FULLNAME-relay[-POOL]) and serviceName
     (FULLNAME-smtp[-POOL]). */}}
{{- define "kuberelay.pools" -}}
{{- $fullname := include "kuberelay.fullname" . -}}
{{- $base := omit (deepCopy .Values.relay) "extraPools" "pool" -}}
{{- $pools := list -}}
{{- $first := deepCopy $base -}}
{{- $_ := set $first "name" .Values.relay.pool -}}
{{- $_ := set $first "resourceName" (printf "%s-relay" $fullname) -}}
{{- $_ := set $first "serviceName" (printf "%s-smtp" $fullname) -}}
{{- $pools = append $pools $first -}}
{{- $seen := dict .Values.relay.pool true -}}
{{- range .Values.relay.extraPools -}}
{{- if hasKey $seen .name -}}
{{- fail (printf "relay.extraPools: the pool %q is listed twice (relay.pool is %q)" .name $.Values.relay.pool) -}}
{{- end -}}
{{- $_ := set $seen .name true -}}
{{- $pool := deepCopy $base -}}
{{- include "kuberelay.deepMerge" (dict "dst" $pool "src" (omit (deepCopy .) "name")) -}}
{{- $_ := set $pool "name" .name -}}
{{- $_ := set $pool "resourceName" (printf "%s-relay-%s" $fullname .name) -}}
{{- $_ := set $pool "serviceName" (printf "%s-smtp-%s" $fullname .name) -}}
{{- $pools = append $pools $pool -}}
{{- end -}}
{{- toYaml $pools -}}
{{- end -}}

{{- define "kuberelay.poolSelectorLabels" -}}
{{ include "kuberelay.relaySelectorLabels" .root }}
kuberelay.io/pool: {{ .pool.name }}
{{- end -}}

{{/* Checks --------------------------------------------------------------------------------- */}}

{{- define "kuberelay.validate" -}}
{{- if and (gt (int .Values.operator.replicas) 1) (not .Values.operator.leaderElection.enabled) -}}
{{- fail "operator.replicas > 1 needs operator.leaderElection.enabled: two operators without a Lease would both write status" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled .Values.metrics.podMonitor.enabled -}}
{{- fail "metrics.serviceMonitor.enabled and metrics.podMonitor.enabled: choose one (both would scrape every target twice)" -}}
{{- end -}}
{{- range (include "kuberelay.pools" . | fromYamlArray) -}}
{{- if and (ne .service.externalTrafficPolicy "Cluster") (eq .service.type "ClusterIP") -}}
{{- fail (printf "pool %q: service.externalTrafficPolicy %s needs service.type NodePort or LoadBalancer" .name .service.externalTrafficPolicy) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* NetworkPolicy: egress to DNS. */}}
{{- define "kuberelay.dnsEgress" -}}
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
  {{- with .Values.networkPolicy.dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* The operator's rules on namespaced resources (ClusterRole, or a Role per watched namespace). */}}
{{- define "kuberelay.operatorNamespacedRules" -}}
- apiGroups: [smtp.kuberelay.io]
  resources: [receiveconnectors, senderpermissions, accepteddomains]
  verbs: [get, list, watch]
- apiGroups: [smtp.kuberelay.io]
  resources: [receiveconnectors/status, senderpermissions/status, accepteddomains/status]
  verbs: [patch, update]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
{{- if .Values.operator.events }}
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- end }}
{{- end -}}
