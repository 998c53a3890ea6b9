package controlplane

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	"k8s.io/apiserver/pkg/storage/storagebackend"
	kubeapiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
)

// apiServer is a kube-apiserver running in this process on a free loopback
// port, serving from etcd.
type apiServer struct {
	tb     *serverTB
	server kubeapiservertesting.TestServer
}

// startAPIServer starts a kube-apiserver on etcd at etcdURL. Clients
// authenticate with token (in group system:masters), so that a restarted
// server accepts the clients of the one before.
func startAPIServer(etcdURL, prefix, tokenFile string, extraFlags []string, log io.Writer) (*apiServer, error) {
	storage := storagebackend.NewDefaultConfig(prefix, nil)
	storage.Transport.ServerList = []string{etcdURL}
	// RBAC, so that a test can withhold a verb (watch) from a user.
	// ShardedListAndWatch (alpha in 1.36), so that lists and watches
	// honour ListOptions.ShardSelector.
	flags := append([]string{"--token-auth-file=" + tokenFile, "--authorization-mode=RBAC",
		"--feature-gates=ShardedListAndWatch=true"}, extraFlags...)
	opts := kubeapiservertesting.NewDefaultTestServerOptions()
	// Its invariant check scrapes metrics at shutdown; a server we stop on
	// purpose mid-test has nothing to prove there.
	opts.DisableInvariantChecks = true

	tb := newServerTB("kube-apiserver", log)
	var server kubeapiservertesting.TestServer
	err := tb.run(func() error {
		var err error
		server, err = kubeapiservertesting.StartTestServer(tb, opts, flags, storage)
		return err
	})
	if err != nil {
		tb.runCleanups()
		return nil, fmt.Errorf("start kube-apiserver: %w", err)
	}
	return &apiServer{tb: tb, server: server}, nil
}

// addr returns the host:port the server listens on.
func (a *apiServer) addr() (string, error) {
	u, err := url.Parse(a.server.ClientConfig.Host)
	if err != nil {
		return "", fmt.Errorf("kube-apiserver address %q: %w", a.server.ClientConfig.Host, err)
	}
	return u.Host, nil
}

func (a *apiServer) stop() {
	if a.server.TearDownFn != nil {
		a.server.TearDownFn()
	}
	a.tb.runCleanups()
}

// writeTokenFile writes the static token file the API server authenticates
// clients with: the admin (in group system:masters, which RBAC lets do
// anything) and UnprivilegedUser, who may do only what a test grants.
func writeTokenFile(dir, adminToken, userToken string) (string, error) {
	path := filepath.Join(dir, "tokens.csv")
	lines := fmt.Sprintf("%s,controlplane-admin,controlplane-admin,\"system:masters\"\n%s,%s,%s\n",
		adminToken, userToken, UnprivilegedUser, UnprivilegedUser)
	if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
		return "", fmt.Errorf("write token file: %w", err)
	}
	return path, nil
}
