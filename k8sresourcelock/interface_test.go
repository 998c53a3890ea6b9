package k8sresourcelock

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	"github.com/k8sleaderelection/k8sleaderelection/internal/nilness"
)

func TestNewBuildsEachKind(t *testing.T) {
	cs := fakekube.New()
	rlc := ResourceLockConfig{Identity: "a", Key: "stable"}
	for kind, want := range map[string]string{
		LeasesResourceLock:           "*k8sresourcelock.LeaseLock",
		ConfigMapsResourceLock:       "*k8sresourcelock.ConfigMapLock",
		EndpointsResourceLock:        "*k8sresourcelock.EndpointsLock",
		ConfigMapsLeasesResourceLock: "*k8sresourcelock.MultiLock",
		EndpointsLeasesResourceLock:  "*k8sresourcelock.MultiLock",
	} {
		lock, err := New(kind, ns, name, cs.CoreV1(), cs.CoordinationV1(), rlc)
		if err != nil {
			t.Fatalf("New(%q): %v", kind, err)
		}
		if got := fmt.Sprintf("%T", lock); got != want {
			t.Errorf("New(%q) = %s, want %s", kind, got, want)
		}
		if lock.Identity() != "a" || lock.Key() != "stable" || lock.Describe() != ns+"/"+name {
			t.Errorf("New(%q): identity %q, key %q, describe %q", kind, lock.Identity(), lock.Key(), lock.Describe())
		}
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	cs := fakekube.New()
	rlc := ResourceLockConfig{Identity: "a"}
	for _, tc := range []struct {
		name, kind, ns, lockName string
		noCore, noLeases         bool
		want                     string
	}{
		{name: "unknown kind", kind: "secrets", ns: ns, lockName: name, want: `lock type "secrets" is not one of`},
		{name: "no namespace", kind: LeasesResourceLock, lockName: name, want: "namespace must not be empty"},
		{name: "no name", kind: LeasesResourceLock, ns: ns, want: "name must not be empty"},
		{name: "lease without client", kind: LeasesResourceLock, ns: ns, lockName: name, noLeases: true, want: "coordinationClient must not be nil"},
		{name: "configmap without client", kind: ConfigMapsResourceLock, ns: ns, lockName: name, noCore: true, want: "coreClient must not be nil"},
		{name: "multilock without lease client", kind: EndpointsLeasesResourceLock, ns: ns, lockName: name, noLeases: true, want: "coordinationClient must not be nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, coord := cs.CoreV1(), cs.CoordinationV1()
			if tc.noCore {
				core = nil
			}
			if tc.noLeases {
				coord = nil
			}
			_, err := New(tc.kind, tc.ns, tc.lockName, core, coord, rlc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: got %v, want an error containing %q", err, tc.want)
			}
			// The clients NewForConfig returns with its error: typed nils.
			if tc.noCore {
				core = (*corev1client.CoreV1Client)(nil)
			}
			if tc.noLeases {
				coord = (*coordinationv1client.CoordinationV1Client)(nil)
			}
			if tc.noCore || tc.noLeases {
				if _, err := New(tc.kind, tc.ns, tc.lockName, core, coord, rlc); err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("New with a typed nil client: got %v, want an error containing %q", err, tc.want)
				}
			}
		})
	}
}

func TestNewFromKubeconfig(t *testing.T) {
	if _, err := NewFromKubeconfig(LeasesResourceLock, ns, name, ResourceLockConfig{Identity: "a"}, nil, 10*time.Second); err == nil || !strings.Contains(err.Error(), "kubeconfig must not be nil") {
		t.Fatalf("nil kubeconfig: got %v", err)
	}
	cfg := &rest.Config{Host: "https://127.0.0.1:1", Timeout: 42 * time.Second}
	lock, err := NewFromKubeconfig(LeasesResourceLock, ns, name, ResourceLockConfig{Identity: "a"}, cfg, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := lock.(*LeaseLock); !ok {
		t.Fatalf("got %T, want *LeaseLock", lock)
	}
	if cfg.Timeout != 42*time.Second || cfg.UserAgent != "" {
		t.Fatalf("NewFromKubeconfig changed the caller's config: %+v", cfg)
	}
}

func TestClientTimeout(t *testing.T) {
	for renew, want := range map[time.Duration]time.Duration{
		10 * time.Second: 5 * time.Second, 3 * time.Second: 1500 * time.Millisecond,
		time.Second: time.Second, 100 * time.Millisecond: time.Second,
	} {
		if got := clientTimeout(renew); got != want {
			t.Errorf("clientTimeout(%v) = %v, want %v", renew, got, want)
		}
	}
}

// TestNewFromKubeconfigWatchesWithoutTimeout: requests are bounded by half
// a renewal, but watches, which that bound would end, use a client without
// it, on every lock kind.
func TestNewFromKubeconfigWatchesWithoutTimeout(t *testing.T) {
	timeoutOf := func(client any) time.Duration {
		return client.(interface{ RESTClient() rest.Interface }).RESTClient().(*rest.RESTClient).Client.Timeout
	}
	cfg := &rest.Config{Host: "https://127.0.0.1:1"}
	for _, kind := range lockKinds {
		lock, err := NewFromKubeconfig(kind, ns, name, ResourceLockConfig{Identity: "a"}, cfg, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var halves []Interface
		if ml, ok := lock.(*MultiLock); ok {
			halves = []Interface{ml.Primary, ml.Secondary}
		} else {
			halves = []Interface{lock}
		}
		for _, half := range halves {
			var client, watchClient any
			switch l := half.(type) {
			case *LeaseLock:
				client, watchClient = l.Client, l.watchClient
			case *ConfigMapLock:
				client, watchClient = l.Client, l.watchClient
			case *EndpointsLock:
				client, watchClient = l.Client, l.watchClient
			}
			if timeoutOf(client) != 5*time.Second || watchClient == nil || timeoutOf(watchClient) != 0 {
				t.Errorf("%s %T: request timeout %v, watch client %v; want 5s, and one without a timeout", kind, half, timeoutOf(client), watchClient)
			}
		}
	}
}

// typedNilOf holds, for each interface type a caller can set in a lock, a
// nil pointer of a type that implements it: what a constructor that failed
// leaves beside its error.
var typedNilOf = map[reflect.Type]any{
	reflect.TypeFor[coordinationv1client.LeasesGetter](): (*coordinationv1client.CoordinationV1Client)(nil),
	reflect.TypeFor[corev1client.ConfigMapsGetter]():     (*corev1client.CoreV1Client)(nil),
	reflect.TypeFor[corev1client.EndpointsGetter]():      (*corev1client.CoreV1Client)(nil),
	reflect.TypeFor[EventRecorder]():                     (*eventRecorder)(nil),
	reflect.TypeFor[Interface]():                         (*LeaseLock)(nil),
}

// TestEveryInterfaceFieldRejectsTypedNil: each interface-typed field of
// every lock kind, found by reflection so that a new one is covered the day
// it is added, makes Validate fail with an error naming it when it holds a
// typed nil, whose methods would panic in the election.
func TestEveryInterfaceFieldRejectsTypedNil(t *testing.T) {
	cs := fakekube.New()
	rlc := ResourceLockConfig{Identity: "a", EventRecorder: &eventRecorder{}}
	for _, kind := range lockKinds {
		valid := func() Validator {
			lock, err := New(kind, ns, name, cs.CoreV1(), cs.CoordinationV1(), rlc)
			if err != nil {
				t.Fatal(err)
			}
			return lock.(Validator)
		}
		if err := valid().Validate(); err != nil {
			t.Fatalf("%s: a valid lock fails Validate: %v", kind, err)
		}
		fields := nilness.InterfaceFields(reflect.TypeOf(valid()).Elem())
		if len(fields) < 2 {
			t.Fatalf("%s: found only the interface fields %v", kind, fields)
		}
		for field, index := range fields {
			t.Run(kind+"/"+field, func(t *testing.T) {
				lock := valid()
				value := reflect.ValueOf(lock).Elem().FieldByIndex(index)
				typedNil, ok := typedNilOf[value.Type()]
				if !ok {
					t.Fatalf("no typed nil known for %s (%v): add one to typedNilOf, and make Validate refuse it", field, value.Type())
				}
				value.Set(reflect.ValueOf(typedNil))
				err := lock.Validate()
				want := field[strings.LastIndex(field, ".")+1:] + " must not be"
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("Validate with a typed nil %s = %v, want an error saying %q", field, err, want)
				}
			})
		}
	}
}

// TestNewRejectsTypedNilEventRecorder: New refuses a typed nil
// EventRecorder, whose Eventf would panic on the first event.
func TestNewRejectsTypedNilEventRecorder(t *testing.T) {
	cs := fakekube.New()
	rlc := ResourceLockConfig{Identity: "a", EventRecorder: (*eventRecorder)(nil)}
	for _, kind := range lockKinds {
		_, err := New(kind, ns, name, cs.CoreV1(), cs.CoordinationV1(), rlc)
		want := "EventRecorder must not be a nil *k8sresourcelock.eventRecorder"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(%q) with a typed nil EventRecorder = %v, want an error saying %q", kind, err, want)
		}
	}
}
