package fence

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
)

// YAML is Policy's policy and binding as one YAML stream, ready for
// kubectl apply -f.
func YAML(opts PolicyOptions) ([]byte, error) {
	policy, binding, err := Policy(opts)
	if err != nil {
		return nil, err
	}
	serializer := json.NewSerializerWithOptions(json.DefaultMetaFactory, nil, nil, json.SerializerOptions{Yaml: true})
	var out bytes.Buffer
	for i, obj := range []runtime.Object{policy, binding} {
		if i > 0 {
			out.WriteString("---\n")
		}
		if err := serializer.Encode(obj, &out); err != nil {
			return nil, fmt.Errorf("fence: encode %T: %w", obj, err)
		}
	}
	return out.Bytes(), nil
}

// apiVersion matches an API version such as v1, v1beta1 or v2alpha3.
var apiVersion = regexp.MustCompile(`^v[0-9]+((alpha|beta)[0-9]+)?$`)

// ParseResources reads resources written as kubectl names them, a
// comma-separated list of resource.group or resource.version.group:
// "configmaps,deployments.apps,widgets.v1.example.com". A /subresource is
// parsed, for Policy to refuse it.
func ParseResources(list string) ([]Resource, error) {
	var out []Resource
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, sub, hasSub := strings.Cut(item, "/")
		resource, group, _ := strings.Cut(name, ".")
		if version, rest, ok := strings.Cut(group, "."); ok && apiVersion.MatchString(version) {
			group = rest // kubectl's resource.version.group
		}
		if hasSub {
			resource += "/" + sub
		}
		out = append(out, Resource{Group: group, Resource: resource})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("fence: no resources in %q", list)
	}
	return out, nil
}
