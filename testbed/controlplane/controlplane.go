// Package controlplane runs a real Kubernetes control plane inside the
// calling process: etcd (embedded) and kube-apiserver (the upstream test
// server), both on loopback with free ports and temporary directories. It
// hands back a *rest.Config, and it can stop and restart either server while
// clients keep running, so that tests can watch what clients do through an
// outage. With KUBECONFIG set it connects to that cluster instead, so the
// same tests run against a real one (the restart methods then report
// ErrNotEmbedded).
package controlplane

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/faults"
)

// ErrNotEmbedded is returned by the stop and start methods of a control plane
// that this process does not run.
var ErrNotEmbedded = errors.New("control plane is not embedded in this process")

// Options tunes an embedded control plane.
type Options struct {
	// LogDir receives controlplane.log, where etcd and kube-apiserver
	// write. Empty means a new temporary directory.
	LogDir string
	// APIServerFlags are extra kube-apiserver flags, for example
	// "--feature-gates=..." or "--runtime-config=...".
	APIServerFlags []string
}

// ControlPlane is a running control plane. Its methods are safe for
// concurrent use.
type ControlPlane struct {
	mu       sync.Mutex
	config   *rest.Config
	embedded bool

	dir       string
	logPath   string
	log       io.WriteCloser
	token     string
	userToken string
	tokenFile string
	prefix    string
	flags     []string
	etcd      *etcdServer
	api       *apiServer
	// front keeps one address for clients across API server restarts.
	front *faults.Proxy
	// etcdFront stands between kube-apiserver and etcd, so that the
	// etcd connection can be slowed as a member with a slow disk would
	// answer.
	etcdFront *faults.Proxy
}

// StartOrConnect connects to the cluster named by $KUBECONFIG if it is set,
// and otherwise starts an embedded control plane.
func StartOrConnect(opts Options) (*ControlPlane, error) {
	if path := os.Getenv("KUBECONFIG"); path != "" {
		return Connect(path)
	}
	return Start(opts)
}

// Connect uses the cluster of a kubeconfig file.
func Connect(kubeconfig string) (*ControlPlane, error) {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	return &ControlPlane{config: config}, nil
}

// Start starts etcd and kube-apiserver in this process and waits until the
// API server is ready (a few seconds).
func Start(opts Options) (cp *ControlPlane, err error) {
	dir, err := os.MkdirTemp("", "controlplane-")
	if err != nil {
		return nil, fmt.Errorf("make control plane dir: %w", err)
	}
	logDir := opts.LogDir
	if logDir == "" {
		logDir = dir
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("make log dir: %w", err)
	}
	cp = &ControlPlane{embedded: true, dir: dir, logPath: filepath.Join(logDir, "controlplane.log"), flags: opts.APIServerFlags}
	defer func() {
		if err != nil {
			cp.Close()
		}
	}()
	if cp.log, err = os.OpenFile(cp.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return nil, fmt.Errorf("open control plane log: %w", err)
	}
	cp.token, cp.userToken = randomHex(16), randomHex(16)
	if cp.tokenFile, err = writeTokenFile(dir, cp.token, cp.userToken); err != nil {
		return nil, err
	}
	cp.prefix = "/registry-" + randomHex(4)

	clientAddr, err := faults.FreePort()
	if err != nil {
		return nil, err
	}
	peerAddr, err := faults.FreePort()
	if err != nil {
		return nil, err
	}
	cp.etcd = newEtcd(filepath.Join(dir, "etcd"), clientAddr, peerAddr, cp.logPath)
	if err := cp.etcd.start(); err != nil {
		return nil, err
	}
	if cp.etcdFront, err = faults.New("etcd-front", clientAddr); err != nil {
		return nil, err
	}
	if err := cp.startAPIServerLocked(); err != nil {
		return nil, err
	}
	return cp, nil
}

// Config returns a new copy of the config that reaches the API server.
func (cp *ControlPlane) Config() *rest.Config {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return rest.CopyConfig(cp.config)
}

// UnprivilegedUser is the user UnprivilegedConfig authenticates as: RBAC
// lets it do nothing until a test binds it to a role.
const UnprivilegedUser = "controlplane-user"

// UnprivilegedConfig returns a config that reaches the API server as
// UnprivilegedUser, or ErrNotEmbedded for a cluster this process does not
// run.
func (cp *ControlPlane) UnprivilegedConfig() (*rest.Config, error) {
	if !cp.embedded {
		return nil, ErrNotEmbedded
	}
	config := cp.Config()
	config.BearerToken = cp.userToken
	return config, nil
}

// Embedded reports whether this process runs the control plane.
func (cp *ControlPlane) Embedded() bool { return cp.embedded }

// LogPath returns the file etcd and kube-apiserver log to; empty for a
// cluster that is not embedded.
func (cp *ControlPlane) LogPath() string { return cp.logPath }

// StopAPIServer stops kube-apiserver; requests fail until StartAPIServer.
func (cp *ControlPlane) StopAPIServer() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if !cp.embedded {
		return ErrNotEmbedded
	}
	if cp.api != nil {
		cp.front.Cut()
		cp.api.stop()
		cp.api = nil
	}
	return nil
}

// StartAPIServer starts kube-apiserver again after StopAPIServer, behind the
// same address and accepting the same credentials.
func (cp *ControlPlane) StartAPIServer() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if !cp.embedded {
		return ErrNotEmbedded
	}
	if cp.api != nil {
		return nil
	}
	return cp.startAPIServerLocked()
}

func (cp *ControlPlane) startAPIServerLocked() error {
	api, err := startAPIServer("http://"+cp.etcdFront.Addr(), cp.prefix, cp.tokenFile, cp.flags, cp.log)
	if err != nil {
		return err
	}
	addr, err := api.addr()
	if err != nil {
		api.stop()
		return err
	}
	if cp.front == nil {
		if cp.front, err = faults.New("apiserver-front", addr); err != nil {
			api.stop()
			return err
		}
	} else {
		if err := cp.front.SetUpstream(addr); err != nil {
			api.stop()
			return err
		}
		if err := cp.front.Heal(); err != nil {
			api.stop()
			return err
		}
	}
	cp.api = api
	cp.config = &rest.Config{
		Host:            "https://" + cp.front.Addr(),
		BearerToken:     cp.token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}, // each start serves a new self-signed cert
	}
	return nil
}

// StopEtcd stops etcd; the API server fails its requests until StartEtcd.
// The API server's connections are cut first, as a crash would cut them:
// etcd's graceful stop would otherwise wait for the API server's watches to
// end, up to its request timeout (7 s), serving them meanwhile.
func (cp *ControlPlane) StopEtcd() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if !cp.embedded {
		return ErrNotEmbedded
	}
	cp.etcdFront.Cut()
	cp.etcd.stop()
	return nil
}

// StartEtcd starts etcd again with its data and ports.
func (cp *ControlPlane) StartEtcd() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if !cp.embedded {
		return ErrNotEmbedded
	}
	if cp.etcd.etcd != nil {
		return nil
	}
	if err := cp.etcd.start(); err != nil {
		return err
	}
	return cp.etcdFront.Heal()
}

// SlowEtcd delays every byte between kube-apiserver and etcd by d in each
// direction until HealEtcd: each request the API server sends etcd takes at
// least 2d longer, as if etcd's disk were slow to sync (a stand-in: reads
// are slowed as much as writes).
func (cp *ControlPlane) SlowEtcd(d time.Duration) error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if !cp.embedded {
		return ErrNotEmbedded
	}
	if d < 0 {
		return fmt.Errorf("etcd delay (%v) must not be negative", d)
	}
	return cp.etcdFront.Latency(d)
}

// HealEtcd ends SlowEtcd.
func (cp *ControlPlane) HealEtcd() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if !cp.embedded {
		return ErrNotEmbedded
	}
	return cp.etcdFront.Heal()
}

// Close stops everything and removes the temporary data. The log file stays.
func (cp *ControlPlane) Close() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if !cp.embedded {
		return
	}
	if cp.api != nil {
		cp.api.stop()
		cp.api = nil
	}
	if cp.front != nil {
		cp.front.Close()
	}
	if cp.etcdFront != nil {
		cp.etcdFront.Close()
	}
	if cp.etcd != nil {
		cp.etcd.stop()
	}
	if cp.log != nil {
		_ = cp.log.Close()
	}
	_ = os.RemoveAll(cp.dir)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// WriteKubeconfig writes a kubeconfig file for the control plane, so that
// other tools (kubectl, a second process) can reach it.
func (cp *ControlPlane) WriteKubeconfig(path string) error {
	config := cp.Config()
	kubeconfig := clientcmdapi.NewConfig()
	kubeconfig.Clusters["controlplane"] = &clientcmdapi.Cluster{
		Server:                   config.Host,
		InsecureSkipTLSVerify:    config.TLSClientConfig.Insecure,
		CertificateAuthorityData: config.TLSClientConfig.CAData,
	}
	kubeconfig.AuthInfos["controlplane"] = &clientcmdapi.AuthInfo{
		Token:                 config.BearerToken,
		ClientCertificateData: config.TLSClientConfig.CertData,
		ClientKeyData:         config.TLSClientConfig.KeyData,
	}
	kubeconfig.Contexts["controlplane"] = &clientcmdapi.Context{Cluster: "controlplane", AuthInfo: "controlplane"}
	kubeconfig.CurrentContext = "controlplane"
	if err := clientcmd.WriteToFile(*kubeconfig, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}
