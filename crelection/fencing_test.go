package crelection

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/electiontest"
	"github.com/k8sleaderelection/k8sleaderelection/fence"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// apiRecorder is an API server in memory: it keeps the body of every write
// that reaches it and answers with it.
type apiRecorder struct {
	mu     sync.Mutex
	writes map[string][]byte // "METHOD path" -> body
}

func (r *apiRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
	}
	r.mu.Lock()
	r.writes[req.Method+" "+req.URL.Path] = body
	r.mu.Unlock()
	return &http.Response{
		StatusCode: http.StatusCreated,
		Header:     http.Header{"Content-Type": []string{"application/json"}},
		Body:       io.NopCloser(bytes.NewReader(body)),
		Request:    req,
	}, nil
}

// stamp returns the term the write key carried, and whether it reached
// the server at all.
func (r *apiRecorder) stamp(t *testing.T, key string) (string, bool) {
	t.Helper()
	r.mu.Lock()
	body, ok := r.writes[key]
	delete(r.writes, key)
	r.mu.Unlock()
	if !ok {
		return "", false
	}
	var obj metav1.PartialObjectMetadata
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Fatalf("%s: body %q: %v", key, body, err)
	}
	return obj.Annotations[fence.TermAnnotation], true
}

// leaseTerm is the term the election's Lease is in, as a stamp.
func leaseTerm(t *testing.T, ctx context.Context, e *electiontest.Election) string {
	t.Helper()
	lease, err := e.Client.CoordinationV1().Leases("ns").Get(ctx, "lock", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s/%d/%s", lease.UID, *lease.Spec.LeaseTransitions, *lease.Spec.HolderIdentity)
}

const createPath = "POST /api/v1/namespaces/ns/configmaps"

// TestFencedManagerStampsEveryWriteWithItsTerm: with WithFencing, a write of
// a fenced resource by the manager's client is refused, and never sent,
// before the manager leads; once it leads, every such write carries its
// term, whatever context it is made with; once the term is over (another
// replica took the lock), the late write still carries the old term, which
// the API server's policy refuses. Other resources pass unstamped.
func TestFencedManagerStampsEveryWriteWithItsTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		if err := e.Hold(ctx, "other", "other"); err != nil {
			t.Fatal(err)
		}
		api := &apiRecorder{writes: map[string][]byte{}}
		config := &rest.Config{Host: "https://api.example", Transport: api}
		mgr, err := NewManager(config, testOptions(), electionConfig(e, "rev-1", "rev-1"), WithFencing(fence.Resource{Resource: "configmaps"}))
		if err != nil {
			t.Fatalf("NewManager: %v", err)
		}
		// The manager's client is built from this config and HTTP client.
		client, err := kubernetes.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
		if err != nil {
			t.Fatal(err)
		}
		cms := client.CoreV1().ConfigMaps("ns")
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}

		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); !errors.Is(err, fence.ErrNoTerm) {
			t.Fatalf("a fenced write before the manager leads: %v; want it refused with fence.ErrNoTerm", err)
		}
		if _, sent := api.stamp(t, createPath); sent {
			t.Fatal("a fenced write before the manager leads reached the API server")
		}
		if _, err := client.CoreV1().Secrets("ns").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("a write of a resource that is not fenced: %v; want it sent", err)
		}

		done := start(ctx, mgr)
		if err := e.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := e.AdvanceUntil(ctx, func() bool { return closed(mgr.Elected()) }); err != nil {
			t.Fatal(err)
		}
		term := leaseTerm(t, ctx, e)
		if _, err := cms.Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
			t.Fatalf("a fenced write while leading: %v", err)
		}
		if got, _ := api.stamp(t, createPath); got != term {
			t.Fatalf("a fenced write while leading, made with a context of its own, carried %q; want the term %q", got, term)
		}

		if err := e.Hold(ctx, "rev-2", "rev-2"); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, ErrLeadershipLost) {
			t.Fatalf("Start once rev-2 took the lock: %v; want ErrLeadershipLost", err)
		}
		if _, err := cms.Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
			t.Fatalf("a late fenced write: %v", err)
		}
		if got, _ := api.stamp(t, createPath); got != term || got == leaseTerm(t, ctx, e) {
			t.Fatalf("a late fenced write carried %q; want the manager's old term %q, not the Lease's current one", got, term)
		}
	})
}

// TestWithFencingRejectsWhatCannotBeFenced: fencing needs a Lease lock
// (the policy reads the Lease) and resources the policy can match; NewManager
// names each problem instead of running a manager that would write
// unfenced.
func TestWithFencingRejectsWhatCannotBeFenced(t *testing.T) {
	e := electiontest.New("ns", "lock")
	lease := electionConfig(e, "rev-1", "rev-1")
	configMapLock := electionConfig(e, "rev-1", "rev-1")
	configMapLock.Lock = &rl.ConfigMapLock{
		ConfigMapMeta: metav1.ObjectMeta{Namespace: "ns", Name: "lock"}, Client: e.Client.CoreV1(),
		LockConfig: rl.ResourceLockConfig{Identity: "rev-1", Key: "rev-1"},
	}
	configMaps := WithFencing(fence.Resource{Resource: "configmaps"})
	for _, c := range []struct {
		name     string
		election k8sleaderelection.LeaderElectionConfig
		option   Option
		want     string
	}{
		{"a ConfigMap lock", configMapLock, configMaps, "WithFencing needs a Lease lock (*k8sresourcelock.LeaseLock), not *k8sresourcelock.ConfigMapLock"},
		{"no resources", lease, WithFencing(), "WithFencing: fence: invalid policy options: Resources: name at least one resource to fence"},
		{"a subresource", lease, WithFencing(fence.Resource{Resource: "configmaps/status"}), `WithFencing: fence: invalid policy options: Resources[0]: "configmaps/status" is a subresource`},
		{"a nil option", lease, nil, "options[0] is nil"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewManager(unreachable, testOptions(), c.election, c.option)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("NewManager with %s: %v; want an error containing %q", c.name, err, c.want)
			}
		})
	}
}

// TestWithFencingNeverSendsAWriteThroughAnUnfencedHTTPClient: a caller's
// own HTTP client in the manager's options (options.Client.HTTPClient) is
// what controller-runtime builds the manager's client on, instead of the
// HTTP client of the fenced config; its writes would go out without a
// stamp, which the default policy (StampedOnly) lets through. NewManager
// must refuse it, or the write must still be refused before the manager
// leads.
func TestWithFencingNeverSendsAWriteThroughAnUnfencedHTTPClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		e := electiontest.New("ns", "lock")
		api := &apiRecorder{writes: map[string][]byte{}}
		config := &rest.Config{Host: "https://api.example", Transport: api}
		options := testOptions()
		options.Client.HTTPClient = &http.Client{Transport: api}
		options.MapperProvider = func(*rest.Config, *http.Client) (meta.RESTMapper, error) {
			mapper := meta.NewDefaultRESTMapper(nil)
			mapper.Add(corev1.SchemeGroupVersion.WithKind("ConfigMap"), meta.RESTScopeNamespace)
			return mapper, nil
		}
		mgr, err := NewManager(config, options, electionConfig(e, "rev-1", "rev-1"), WithFencing(fence.Resource{Resource: "configmaps"}))
		if err != nil {
			if !strings.Contains(err.Error(), "options.Client.HTTPClient") {
				t.Fatalf("NewManager with options.Client.HTTPClient: %v; want the error to name options.Client.HTTPClient", err)
			}
			return
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "x"}}
		err = mgr.GetClient().Create(ctx, cm)
		if stamp, sent := api.stamp(t, createPath); sent {
			t.Fatalf("with options.Client.HTTPClient set, a write of a fenced resource by GetClient before the manager ever led reached the API server (stamp %q, error %v); want NewManager to refuse options.Client.HTTPClient, or the write refused with fence.ErrNoTerm", stamp, err)
		}
	})
}
