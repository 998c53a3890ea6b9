package fence

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// sentBody sends one request with a term through WrapTransport(resources)
// and returns the body that reached the next round tripper.
func sentBody(t *testing.T, method, path, contentType, body string, resources ...Resource) string {
	t.Helper()
	var got []byte
	next := roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if req.Body != nil {
			got, _ = io.ReadAll(req.Body)
		}
		return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader("{}")), Request: req}, nil
	})
	req, err := http.NewRequestWithContext(withTerm(t), method, "https://api.example"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := WrapTransport(resources...)(next).RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	_ = resp.Body.Close()
	return string(got)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestAdversarialStampKeepsLargeIntegers: stamping decodes the whole body
// into map[string]any, so every number goes through float64: an integer
// above 2^53 (an int64 field of a custom resource, a counter, an ID) is
// silently changed on its way to the API server. Stamping must not change
// anything but the annotation (decode with UseNumber, or splice only
// metadata with json.RawMessage).
func TestAdversarialStampKeepsLargeIntegers(t *testing.T) {
	const big = "9007199254740993" // 2^53 + 1
	body := `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"generationID":` + big + `}}`
	sent := sentBody(t, http.MethodPut, "/apis/example.com/v1/namespaces/ns1/widgets/w", "application/json", body,
		Resource{Group: "example.com", Resource: "widgets"})
	if !strings.Contains(sent, `"generationID":`+big) {
		t.Fatalf("the stamped body changed an int64 field: sent %s; want generationID %s as the client wrote it", sent, big)
	}
}

// TestAdversarialMergePatchClearingAnnotationsStillClears: in a merge patch
// (RFC 7386) "annotations": null removes every annotation. Stamping
// replaces the null with {term}, which merges instead, so the other
// annotations survive: the fenced client silently changes what the patch
// does. Stamping should leave null-valued annotations alone for a full
// object but, for a merge patch, keep the clearing (e.g. refuse the patch,
// or turn it into an update).
func TestAdversarialMergePatchClearingAnnotationsStillClears(t *testing.T) {
	patch := `{"metadata":{"annotations":null}}`
	// Refusing the patch keeps its meaning too: nothing is sent.
	if _, _, err := stampBody(string(types.MergePatchType), []byte(patch), "3/a"); err != nil {
		if !strings.Contains(err.Error(), "clears every annotation") {
			t.Fatalf("refused with %v; want the reason named", err)
		}
		return
	}
	sent := sentBody(t, http.MethodPatch, "/api/v1/namespaces/ns1/configmaps/x", string(types.MergePatchType), patch, Resource{Resource: "configmaps"})
	target := map[string]any{"metadata": map[string]any{"name": "x", "annotations": map[string]any{"owner": "team-a", "note": "stale"}}}
	var p any
	if err := json.Unmarshal([]byte(sent), &p); err != nil {
		t.Fatal(err)
	}
	result := mergePatch(target, p).(map[string]any)
	annotations, _ := result["metadata"].(map[string]any)["annotations"].(map[string]any)
	for _, key := range []string{"owner", "note"} {
		if _, ok := annotations[key]; ok {
			t.Fatalf("the merge patch %s, meant to clear every annotation, was sent as %s and keeps %q: result annotations %v", patch, sent, key, annotations)
		}
	}
}

// mergePatch applies an RFC 7386 merge patch.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
		} else {
			t[k] = mergePatch(t[k], v)
		}
	}
	return t
}

// TestAdversarialNamespacesAreStampedLikeAnyResource: resourceOf strips
// "namespaces/<name>" as a namespace prefix even when the namespace is the
// object itself, so with namespaces fenced a create is stamped but an
// update or patch of a Namespace (PUT /api/v1/namespaces/foo) is not, and
// /api/v1/namespaces/foo/status reads as resource "status".
func TestAdversarialNamespacesAreStampedLikeAnyResource(t *testing.T) {
	for path, want := range map[string]Resource{
		"/api/v1/namespaces/foo":          {"", "namespaces"},
		"/api/v1/namespaces/foo/status":   {"", "namespaces/status"},
		"/api/v1/namespaces/foo/finalize": {"", "namespaces/finalize"},
	} {
		if got := resourceOf(path); got != want {
			t.Errorf("resourceOf(%q) = %+v, want %+v", path, got, want)
		}
	}
	client, rec := fencedClient(t, Resource{Resource: "namespaces"})
	// The Lease's own namespace: the policy checks no other.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns1"}}
	if _, err := client.CoreV1().Namespaces().Update(withTerm(t), ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := rec.stampOf(t, "PUT /api/v1/namespaces/ns1"); got != termText {
		t.Errorf("an update of a fenced Namespace was stamped %q, want %q: it goes out unfenced", got, termText)
	}
}

// TestAdversarialParseResourcesFullyQualified: kubectl also names a
// resource as resource.version.group ("deployments.v1.apps"); ParseResources
// reads the group as "v1.apps", and the policy then fences a group that
// does not exist: nothing is checked and nothing says so.
func TestAdversarialParseResourcesFullyQualified(t *testing.T) {
	got, err := ParseResources("deployments.v1.apps")
	want := []Resource{{Group: "apps", Resource: "deployments"}}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseResources(deployments.v1.apps) = %+v; want %+v or an error, not a policy for group %q", got, want, got[0].Group)
	}
}

// TestAdversarialPolicyRefusesResourceNamesThatNeverMatch: Policy accepts
// resource names the API server rejects ("/status": empty resource before
// the subresource) or that can never match a request (admission rules
// compare lowercase plural names exactly: "ConfigMaps", "config maps"), so
// fence-policy prints a policy that kubectl apply refuses, or that fences
// nothing while looking right.
func TestAdversarialPolicyRefusesResourceNamesThatNeverMatch(t *testing.T) {
	for _, r := range []Resource{
		{Resource: "/status"},
		{Resource: "configmaps/"},
		{Resource: "ConfigMaps"},
		{Resource: "config maps"},
		{Group: "Apps", Resource: "deployments"},
	} {
		if _, _, err := Policy(PolicyOptions{Namespace: "ns1", Lease: "ctl", Resources: []Resource{r}}); err == nil {
			t.Errorf("Policy accepted resource %+v, which no request ever matches (or the API server rejects)", r)
		}
	}
}
