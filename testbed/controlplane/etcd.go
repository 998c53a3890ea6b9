package controlplane

import (
	"fmt"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// etcdServer is an etcd member embedded in this process. Stop and start keep
// its data directory and ports, as a restarted etcd would.
type etcdServer struct {
	cfg  *embed.Config
	etcd *embed.Etcd
}

func newEtcd(dir, clientAddr, peerAddr, logPath string) *etcdServer {
	cfg := embed.NewConfig()
	cfg.Name = "controlplane"
	cfg.Dir = dir
	client := url.URL{Scheme: "http", Host: clientAddr}
	peer := url.URL{Scheme: "http", Host: peerAddr}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{logPath}
	return &etcdServer{cfg: cfg}
}

func (e *etcdServer) start() error {
	etcd, err := embed.StartEtcd(e.cfg)
	if err != nil {
		return fmt.Errorf("start etcd in %s: %w", e.cfg.Dir, err)
	}
	select {
	case <-etcd.Server.ReadyNotify():
	case err := <-etcd.Err():
		etcd.Close()
		return fmt.Errorf("start etcd: %w", err)
	case <-time.After(time.Minute):
		etcd.Close()
		return fmt.Errorf("start etcd: not ready after a minute")
	}
	e.etcd = etcd
	return nil
}

func (e *etcdServer) stop() {
	if e.etcd != nil {
		e.etcd.Close()
		e.etcd = nil
	}
}
