package fence

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	le "github.com/k8sleaderelection/k8sleaderelection"
)

// Config returns a copy of config for a client whose writes of resources
// are stamped (see WrapTransport), sending JSON, which stamping needs. The
// transport reads request paths relative to config's own API root, so a
// Host with a path (https://rancher.example/k8s/clusters/c-m-abc, an API
// proxy's prefix) is fenced as one without.
func Config(config *rest.Config, resources ...Resource) *rest.Config {
	if config == nil {
		return refuseAll("fence.Config")
	}
	fenced := rest.CopyConfig(config)
	fenced.ContentType = "application/json"
	fenced.Wrap(wrap(apiRootOf(config), resources))
	return fenced
}

// ConfigForTerm is Config for a client that stamps every write of resources
// with the term termOf gives for the request's context, whether or not that
// context carries one itself: a controller that leads at most once (a
// controller-runtime manager of package crelection) knows its term, and a
// write made with a context of its own (context.Background in a reconciler)
// is fenced all the same. It fails closed: a write of one of resources for
// which termOf gives no term (before the first term) is refused with an
// error wrapping ErrNoTerm, never sent unfenced, as is a write in no term
// whose target the transport cannot read. Reads, and writes of other
// resources, go out as they are.
func ConfigForTerm(config *rest.Config, termOf func(context.Context) (le.Term, bool), resources ...Resource) *rest.Config {
	if termOf == nil {
		// No source of terms: every fenced write is refused.
		termOf = func(context.Context) (le.Term, bool) { return le.Term{}, false }
	}
	if config == nil {
		return refuseAll("fence.ConfigForTerm")
	}
	fenced := rest.CopyConfig(config)
	fenced.ContentType = "application/json"
	fenced.Wrap(func(next http.RoundTripper) http.RoundTripper {
		s := newStamper(next, apiRootOf(config), resources)
		s.termOf, s.required = termOf, true
		return s
	})
	return fenced
}

// refuseAll is what Config and ConfigForTerm give for a nil config: a
// config whose every request fails, saying so, since there is no server to
// send it to nor settings to copy, and a panic or an unfenced client would
// be worse.
func refuseAll(fn string) *rest.Config {
	err := fmt.Errorf("%s was given a nil *rest.Config: no request is sent", fn)
	return &rest.Config{
		ContentConfig: rest.ContentConfig{ContentType: "application/json"},
		WrapTransport: func(http.RoundTripper) http.RoundTripper {
			return roundTripperFunc(func(*http.Request) (*http.Response, error) { return nil, err })
		},
	}
}

// roundTripperFunc is a function that is an http.RoundTripper.
type roundTripperFunc func(*http.Request) (*http.Response, error)

// RoundTrip calls f.
func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// WrapTransport returns a wrapper for rest.Config.Wrap: every create,
// update and patch of resources sent with a context that carries a term
// (OnStartedLeading's, or one derived from it) gets TermAnnotation set to
// that term on its way out. Requests without a term go out as they are, for
// the policy to judge (StampedOnly lets them through).
//
// It fails closed: a write in a term fails with an error that says why,
// rather than going out unfenced, when its body cannot be stamped
// (protobuf, a JSON patch: the client must send JSON, as Config makes it),
// when its path names no resource it can read (WrapTransport expects the
// API at the server's root; for a Host with a path use Config, which knows
// it; a path that goes on past a subresource, a proxy's, is refused, since a
// proxy prefix such as Karmada's can make any API path look like one), or
// when it writes a fenced resource in a namespace other than the
// Lease's, which the policy is not bound to (Policy binds one namespace).
//
//	client := kubernetes.NewForConfigOrDie(fence.Config(config, fence.Resource{Resource: "configmaps"}))
func WrapTransport(resources ...Resource) func(http.RoundTripper) http.RoundTripper {
	return wrap("", resources)
}

func wrap(root string, resources []Resource) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		return newStamper(next, root, resources)
	}
}

// newStamper stamps writes with the term of their context, and lets a write
// without one through.
func newStamper(next http.RoundTripper, root string, resources []Resource) *stamper {
	fenced := map[Resource]bool{}
	for _, r := range resources {
		fenced[r] = true
	}
	return &stamper{next: next, root: root, fenced: fenced, termOf: le.TermFromContext}
}

// apiRootOf is the path under which config's clients find /api and /apis:
// its Host's path, "" when it has none. A Host that does not parse gives a
// root no path starts with, so that every write in a term fails rather
// than being read against the wrong root (the client itself fails on it
// anyway).
func apiRootOf(config *rest.Config) string {
	base, _, err := rest.DefaultServerUrlFor(config)
	if err != nil {
		return "\x00unparsable host " + config.Host
	}
	return strings.TrimRight(base.Path, "/")
}

type stamper struct {
	next http.RoundTripper
	// root is the path the API is served under, without a trailing slash.
	root   string
	fenced map[Resource]bool
	// termOf gives the term a write is made in.
	termOf func(context.Context) (le.Term, bool)
	// required refuses a fenced write in no term, instead of sending it
	// as it is.
	required bool
}

func (s *stamper) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost && req.Method != http.MethodPut && req.Method != http.MethodPatch {
		return s.next.RoundTrip(req)
	}
	term, inTerm := s.termOf(req.Context())
	if !inTerm && !s.required {
		return s.next.RoundTrip(req)
	}
	target, ok := targetOf(s.root, req.URL.Path)
	if !ok && !inTerm {
		return nil, fmt.Errorf("fence: %s %s: cannot tell which resource this write targets, and it is made in no leader term, so it could be neither fenced nor let through as unfenced; the transport reads paths under %q/api and %q/apis: %w",
			req.Method, req.URL.Path, s.root, s.root, ErrNoTerm)
	}
	if !ok {
		return nil, fmt.Errorf("fence: %s %s: cannot tell which resource this write in leader term %s targets, so it cannot be fenced; the transport reads paths under %q/api and %q/apis (a client whose Host has a path must be made with fence.Config, which reads the path from it)",
			req.Method, req.URL.Path, term, s.root, s.root)
	}
	if !s.fenced[target.resource] {
		return s.next.RoundTrip(req)
	}
	if !inTerm {
		return nil, fmt.Errorf("fence: %s %s: a write of fenced resource %s made in no leader term is refused rather than sent unfenced: %w", req.Method, req.URL.Path, target.resource, ErrNoTerm)
	}
	if req.Body == nil {
		return nil, fmt.Errorf("fence: %s %s: a write of fenced resource %s in leader term %s has no body to stamp", req.Method, req.URL.Path, target.resource, term)
	}
	body, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("fence: read the body to stamp: %w", err)
	}
	stamped, name, err := stampBody(req.Header.Get("Content-Type"), body, term.String())
	if err != nil {
		return nil, fmt.Errorf("fence: %s %s: %w", req.Method, req.URL.Path, err)
	}
	if err := checkNamespace(target, name, term); err != nil {
		return nil, fmt.Errorf("fence: %s %s: %w", req.Method, req.URL.Path, err)
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(stamped))
	out.ContentLength = int64(len(stamped))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(stamped)), nil }
	return s.next.RoundTrip(out)
}

// checkNamespace refuses a stamped write the policy would not see: the
// binding selects the Lease's namespace, so a namespaced object elsewhere,
// or a Namespace other than the Lease's, passes unchecked whatever its
// stamp. A cluster-scoped object of another kind is checked wherever it is.
// bodyName is the object's name from the body, which names a Namespace on
// create.
func checkNamespace(t target, bodyName string, term le.Term) error {
	ns, what := t.namespace, "in namespace"
	if t.resource == (Resource{Resource: "namespaces"}) {
		ns, what = t.name, "Namespace"
		if ns == "" {
			ns = bodyName
		}
	} else if !t.namespaced {
		return nil
	}
	if ns != term.Namespace {
		return fmt.Errorf("a write of fenced resource %s %s %q in leader term %s would not be checked: the fencing policy binds only the Lease's namespace %q; write it with a context that carries no term, or fence it with a Lease of its own namespace",
			t.resource, what, ns, term, term.Namespace)
	}
	return nil
}

// stampBody sets the term annotation in a JSON object body: a whole object
// (create, update) or a patch that merges (merge, strategic merge, apply).
// It also returns the object's metadata.name ("" if it has none).
func stampBody(contentType string, body []byte, term string) ([]byte, string, error) {
	mediaType, _, _ := mime.ParseMediaType(contentType)
	switch mediaType {
	case "application/json", string(types.MergePatchType), string(types.StrategicMergePatchType), string(types.ApplyYAMLPatchType):
	case string(types.JSONPatchType):
		return nil, "", fmt.Errorf("cannot stamp a JSON patch (its target may have no annotations); use a merge patch or an update")
	default:
		return nil, "", fmt.Errorf("cannot stamp a %q body; fenced resources need JSON (the client's ContentType)", contentType)
	}
	var obj map[string]any
	decoder := json.NewDecoder(bytes.NewReader(body))
	decoder.UseNumber() // numbers go out as they came, not through float64
	if err := decoder.Decode(&obj); err != nil || obj == nil {
		return nil, "", fmt.Errorf("cannot stamp a body that is not a JSON object (an apply patch must be sent as JSON): %v", err)
	}
	metadata, _ := obj["metadata"].(map[string]any)
	if metadata == nil {
		metadata = map[string]any{}
		obj["metadata"] = metadata
	}
	if value, present := metadata["annotations"]; present && value == nil {
		return nil, "", errors.New("cannot stamp a patch that clears every annotation (annotations: null): stamped, it would clear none; remove them one by one")
	}
	annotations, _ := metadata["annotations"].(map[string]any)
	if annotations == nil {
		annotations = map[string]any{}
		metadata["annotations"] = annotations
	}
	annotations[TermAnnotation] = term
	name, _ := metadata["name"].(string)
	stamped, err := json.Marshal(obj)
	return stamped, name, err
}

// target is what a request path names.
type target struct {
	resource Resource
	// namespaced: the path is under namespaces/<namespace>/.
	namespaced bool
	namespace  string
	// name is the object's name, "" for a collection (a create).
	name string
}

// targetOf reads the resource (and subresource) a request path names,
// relative to root, the path the API is served under:
// <root>/api/v1/namespaces/ns/configmaps/name,
// <root>/apis/apps/v1/namespaces/ns/deployments/name/status. ok is false
// for a path outside root, one that names no resource, and one that goes on
// past a subresource (a proxy's path).
func targetOf(root, path string) (t target, ok bool) {
	rest, under := strings.CutPrefix(path, root+"/")
	if !under {
		return target{}, false
	}
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	var group string
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		group, parts = parts[1], parts[3:]
	default:
		return target{}, false
	}
	namespaceItself := len(parts) < 3 || len(parts) == 3 && (parts[2] == "status" || parts[2] == "finalize")
	if len(parts) > 0 && parts[0] == "namespaces" && !namespaceItself {
		// A namespaced object's path, not a Namespace's own.
		t.namespaced, t.namespace = true, parts[1]
		parts = parts[2:]
	}
	if len(parts) == 0 || len(parts) > 3 {
		// Beyond resource/name/subresource lies only a proxy's path,
		// which may be a whole API path behind a proxy prefix that looks
		// like one of ours (Karmada's .../clusters/<c>/proxy, a service
		// proxy): the write's real target is unknown.
		return target{}, false
	}
	switch len(parts) {
	case 1:
		t.resource = Resource{Group: group, Resource: parts[0]}
	case 2:
		t.resource, t.name = Resource{Group: group, Resource: parts[0]}, parts[1]
	default:
		t.resource, t.name = Resource{Group: group, Resource: parts[0] + "/" + parts[2]}, parts[1]
	}
	if t.resource.Resource == "" {
		return target{}, false
	}
	return t, true
}

// resourceOf is the resource a path under the server's root names.
func resourceOf(path string) Resource {
	t, _ := targetOf("", path)
	return t.resource
}
