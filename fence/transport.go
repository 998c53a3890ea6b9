package fence

import (
	"bytes"
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
// are stamped (WrapTransport), sending JSON, which stamping needs.
func Config(config *rest.Config, resources ...Resource) *rest.Config {
	fenced := rest.CopyConfig(config)
	fenced.ContentType = "application/json"
	fenced.Wrap(WrapTransport(resources...))
	return fenced
}

// WrapTransport returns a wrapper for rest.Config.Wrap: every create,
// update and patch of resources sent with a context that carries a term
// (OnStartedLeading's, or one derived from it) gets TermAnnotation set to
// that term on its way out. Requests without a term go out as they are, for
// the policy to judge (StampedOnly lets them through). A body it cannot
// stamp (protobuf, a JSON patch) fails the request with an error that says
// so, rather than going out unfenced: the client must send JSON, as Config
// makes it.
//
//	client := kubernetes.NewForConfigOrDie(fence.Config(config, fence.Resource{Resource: "configmaps"}))
func WrapTransport(resources ...Resource) func(http.RoundTripper) http.RoundTripper {
	fenced := map[Resource]bool{}
	for _, r := range resources {
		fenced[r] = true
	}
	return func(next http.RoundTripper) http.RoundTripper {
		return &stamper{next: next, fenced: fenced}
	}
}

type stamper struct {
	next   http.RoundTripper
	fenced map[Resource]bool
}

func (s *stamper) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost && req.Method != http.MethodPut && req.Method != http.MethodPatch {
		return s.next.RoundTrip(req)
	}
	term, ok := le.TermFromContext(req.Context())
	if !ok || !s.fenced[resourceOf(req.URL.Path)] || req.Body == nil {
		return s.next.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("fence: read the body to stamp: %w", err)
	}
	stamped, err := stampBody(req.Header.Get("Content-Type"), body, term.String())
	if err != nil {
		return nil, fmt.Errorf("fence: %s %s: %w", req.Method, req.URL.Path, err)
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(stamped))
	out.ContentLength = int64(len(stamped))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(stamped)), nil }
	return s.next.RoundTrip(out)
}

// stampBody sets the term annotation in a JSON object body: a whole object
// (create, update) or a patch that merges (merge, strategic merge, apply).
func stampBody(contentType string, body []byte, term string) ([]byte, error) {
	mediaType, _, _ := mime.ParseMediaType(contentType)
	switch mediaType {
	case "application/json", string(types.MergePatchType), string(types.StrategicMergePatchType), string(types.ApplyYAMLPatchType):
	case string(types.JSONPatchType):
		return nil, fmt.Errorf("cannot stamp a JSON patch (its target may have no annotations); use a merge patch or an update")
	default:
		return nil, fmt.Errorf("cannot stamp a %q body; fenced resources need JSON (the client's ContentType)", contentType)
	}
	var obj map[string]any
	decoder := json.NewDecoder(bytes.NewReader(body))
	decoder.UseNumber() // numbers go out as they came, not through float64
	if err := decoder.Decode(&obj); err != nil || obj == nil {
		return nil, fmt.Errorf("cannot stamp a body that is not a JSON object (an apply patch must be sent as JSON): %v", err)
	}
	metadata, _ := obj["metadata"].(map[string]any)
	if metadata == nil {
		metadata = map[string]any{}
		obj["metadata"] = metadata
	}
	if value, present := metadata["annotations"]; present && value == nil {
		return nil, errors.New("cannot stamp a patch that clears every annotation (annotations: null): stamped, it would clear none; remove them one by one")
	}
	annotations, _ := metadata["annotations"].(map[string]any)
	if annotations == nil {
		annotations = map[string]any{}
		metadata["annotations"] = annotations
	}
	annotations[TermAnnotation] = term
	return json.Marshal(obj)
}

// resourceOf reads the resource (and subresource) a request path names:
// /api/v1/namespaces/ns/configmaps/name, /apis/apps/v1/namespaces/ns/deployments/name/status.
func resourceOf(path string) Resource {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var group string
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		group, parts = parts[1], parts[3:]
	default:
		return Resource{}
	}
	namespaceItself := len(parts) < 3 || len(parts) == 3 && (parts[2] == "status" || parts[2] == "finalize")
	if len(parts) > 0 && parts[0] == "namespaces" && !namespaceItself {
		// A namespaced object's path, not a Namespace's own.
		parts = parts[2:]
	}
	switch len(parts) {
	case 0:
		return Resource{}
	case 1, 2:
		return Resource{Group: group, Resource: parts[0]}
	default:
		return Resource{Group: group, Resource: parts[0] + "/" + parts[2]}
	}
}
