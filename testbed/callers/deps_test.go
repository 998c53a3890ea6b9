package callers

// The callers' packages, imported so that this module's go.mod holds
// everything they need; the test builds rewritten copies of them.
import (
	_ "istio.io/istio/pilot/pkg/leaderelection"
	_ "k8s.io/component-base/metrics/prometheus/clientgo/leaderelection"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "sigs.k8s.io/controller-runtime/pkg/leaderelection/fake"
	_ "sigs.k8s.io/controller-runtime/pkg/metrics"
)
