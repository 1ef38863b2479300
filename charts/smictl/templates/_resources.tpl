{{/*
Memory of the control plane container (docs/helm.md, "Sizing for many proxies"). Each worker
parks up to controlPlane.maxParkedPolls proxy long polls on its event loop, so a fixed memory
limit is outgrown as soon as the cap is raised for a large fleet and the pod is OOM-killed.
Unless controlPlane.resources sets them, request and limit therefore follow the settings:

  request = workers x 65Mi                      + workers x maxParkedPolls x 30Ki
  limit   = workers x (110Mi + regoMemoryLimit) + workers x maxParkedPolls x 30Ki

each rounded up to a whole Mi. 65Mi is a worker's RSS with no poll parked and 30Ki what each
parked poll adds (measured: docs/control-plane.md, "Policy distribution"). 110Mi is a worker
with its Rego evaluator child at rest and its share of gunicorn's master, and regoMemoryLimit
what that child may grow by before rego-cpp stops it (docs/policy-input.md, "Memory"): the limit
holds the worst case, the request the workers' own memory with every poll parked.
*/}}
{{- define "smictl.controlPlaneMemoryNeed" -}}
{{- $cp := .Values.controlPlane }}
{{- $mi := 1048576 }}
{{- $idleWorkerMi := 65 }}
{{- $workerWithEvaluatorMi := 110 }}
{{- $parkedPollKi := 30 }}
{{- $workers := int64 $cp.workers }}
{{- $rego := include "smictl.quantityBytes" (dict "quantity" (get $cp "regoMemoryLimit") "rego" true "path" "controlPlane.regoMemoryLimit") | atoi }}
{{- if not $rego }}
{{- /* Empty or 0: the evaluator falls back to its own 1 GiB default (smi/policy/sandbox.py). */}}
{{- $rego = 1073741824 }}
{{- end }}
{{- $parked := mul $workers (int64 $cp.maxParkedPolls) $parkedPollKi 1024 }}
{{- $request := add (mul $workers $idleWorkerMi $mi) $parked }}
{{- $limit := add (mul $workers (add (mul $workerWithEvaluatorMi $mi) $rego)) $parked }}
{{- dict "request" (div (add $request $mi -1) $mi) "limit" (div (add $limit $mi -1) $mi) | toJson }}
{{- end }}

{{/*
Bytes in a memory quantity, rounded up: (dict "quantity" q "path" p) for a Kubernetes quantity
(a YAML number is bytes; "m" is milli), "rego" true for regoMemoryLimit, read as
smi.policy.sandbox reads SMICTL_REGO_MEMORY_LIMIT (suffix case ignored, "m" is mega) so that
the limit is sized for the budget the evaluator really gets.
*/}}
{{- define "smictl.quantityBytes" -}}
{{- $q := .quantity }}
{{- $rego := get . "rego" }}
{{- if and $rego (not $q) }}
{{- print 0 }}
{{- else if not (kindIs "string" $q) }}
{{- printf "%d" (int64 $q) }}
{{- else }}
{{- $re := "^([0-9]+)(\\.([0-9]+))?([A-Za-z]*)$" }}
{{- $units := dict "" (list 1 1) "m" (list 1 1000) "k" (list 1000 1) "M" (list 1000000 1) "G" (list 1000000000 1) "T" (list 1000000000000 1) "Ki" (list 1024 1) "Mi" (list 1048576 1) "Gi" (list 1073741824 1) "Ti" (list 1099511627776 1) }}
{{- if $rego }}
{{- $units = dict "" (list 1 1) "k" (list 1000 1) "m" (list 1000000 1) "g" (list 1000000000 1) "ki" (list 1024 1) "mi" (list 1048576 1) "gi" (list 1073741824 1) }}
{{- end }}
{{- $suffix := regexReplaceAll $re $q "${4}" }}
{{- if $rego }}
{{- $suffix = lower $suffix }}
{{- end }}
{{- if or (not (regexMatch $re $q)) (not (hasKey $units $suffix)) }}
{{- fail (printf "%s: %q is not a memory quantity (e.g. 512Mi)" .path $q) }}
{{- end }}
{{- $frac := regexReplaceAll $re $q "${3}" }}
{{- $unit := index $units $suffix }}
{{- $scale := atoi (printf "1%s" (repeat (len $frac) "0")) }}
{{- $num := mul (add (mul (atoi (regexReplaceAll $re $q "${1}")) $scale) (atoi (default "0" $frac))) (index $unit 0) }}
{{- $den := mul $scale (index $unit 1) }}
{{- printf "%d" (div (add $num $den -1) $den) }}
{{- end }}
{{- end }}

{{/*
controlPlane.resources with the memory request and limit filled in where they are empty (or
absent). A value set by hand is kept; the other side is computed but kept consistent with it,
since the API server refuses a pod whose request exceeds its limit: a computed request is
lowered to a hand-set limit, a computed limit raised to a hand-set request.
*/}}
{{- define "smictl.controlPlaneResources" -}}
{{- $resources := deepCopy (get .Values.controlPlane "resources" | default dict) }}
{{- $requests := get $resources "requests" | default dict }}
{{- $limits := get $resources "limits" | default dict }}
{{- $need := include "smictl.controlPlaneMemoryNeed" . | fromJson }}
{{- $mi := 1048576 }}
{{- $limit := get $limits "memory" }}
{{- if not $limit }}
{{- $limit = printf "%dMi" (int64 $need.limit) }}
{{- with get $requests "memory" }}
{{- if gt (include "smictl.quantityBytes" (dict "quantity" . "path" "controlPlane.resources.requests.memory") | atoi) (mul (int64 $need.limit) $mi) }}
{{- $limit = . }}
{{- end }}
{{- end }}
{{- end }}
{{- $request := get $requests "memory" }}
{{- if not $request }}
{{- $request = printf "%dMi" (int64 $need.request) }}
{{- if lt (include "smictl.quantityBytes" (dict "quantity" $limit "path" "controlPlane.resources.limits.memory") | atoi) (mul (int64 $need.request) $mi) }}
{{- $request = $limit }}
{{- end }}
{{- end }}
{{- $_ := set $requests "memory" $request }}
{{- $_ = set $limits "memory" $limit }}
{{- $_ = set $resources "requests" $requests }}
{{- $_ = set $resources "limits" $limits }}
{{- toYaml $resources }}
{{- end }}

{{/*
A warning for NOTES.txt when controlPlane.resources.limits.memory is set by hand below what the
settings need: a limit copied from an older values file does not grow with maxParkedPolls.
Empty when the limit is computed or large enough.
*/}}
{{- define "smictl.controlPlaneMemoryWarning" -}}
{{- $limits := get (get .Values.controlPlane "resources" | default dict) "limits" | default dict }}
{{- with get $limits "memory" }}
{{- $need := include "smictl.controlPlaneMemoryNeed" $ | fromJson }}
{{- $set := include "smictl.quantityBytes" (dict "quantity" . "path" "controlPlane.resources.limits.memory") | atoi }}
{{- if lt $set (mul (int64 $need.limit) 1048576) }}
{{- $shown := ternary . (printf "%d" (int64 .)) (kindIs "string" .) }}
{{- $cp := $.Values.controlPlane }}
{{- printf "WARNING: controlPlane.resources.limits.memory (%s) is below the %dMi that workers=%d, maxParkedPolls=%d and regoMemoryLimit=%s need: under a large fleet the control plane may be OOM-killed. Raise it, or leave it empty to have it computed (docs/helm.md, \"Sizing for many proxies\")." $shown (int64 $need.limit) (int64 $cp.workers) (int64 $cp.maxParkedPolls) (get $cp "regoMemoryLimit" | default "") }}
{{- end }}
{{- end }}
{{- end }}
