package faults

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"k8s.io/client-go/rest"
)

func TestSwitchCrashesClients(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer server.Close()
	var s Switch
	client, err := rest.HTTPClientFor(s.Wrap(&rest.Config{Host: server.URL}))
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := client.Get(server.URL); err != nil {
		t.Fatalf("before the crash: %v", err)
	} else {
		resp.Body.Close()
	}
	s.Crash()
	if _, err := client.Get(server.URL); !errors.Is(err, ErrCrashed) {
		t.Fatalf("after the crash: %v, want ErrCrashed", err)
	}
}
