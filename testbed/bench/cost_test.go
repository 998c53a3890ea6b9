package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/tenures"
)

func TestJudgeReadsEachElectionOverTheWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	from, to := at(10), at(40)
	cases := []struct {
		name    string
		tenures []tenures.Tenure
		want    electionHealth
	}{
		{"one leader throughout", []tenures.Tenure{{ID: "a", Start: at(0)}}, electionHealth{}},
		{"a leader that lost before the window", []tenures.Tenure{{ID: "a", Start: at(0), End: at(5)}, {ID: "b", Start: at(6)}}, electionHealth{}},
		{"a handover with a gap", []tenures.Tenure{{ID: "a", Start: at(0), End: at(20)}, {ID: "b", Start: at(25)}},
			electionHealth{changed: 1, leaderless: 1, lost: 1, longestGap: 5 * time.Second}},
		{"two leaders at once", []tenures.Tenure{{ID: "a", Start: at(0), End: at(30)}, {ID: "b", Start: at(20)}},
			electionHealth{twoLeaders: 1, changed: 1, lost: 1}},
		{"no leader from the middle on", []tenures.Tenure{{ID: "a", Start: at(0), End: at(30)}},
			electionHealth{leaderless: 1, lost: 1, longestGap: 10 * time.Second}},
		{"no leader at all", nil, electionHealth{leaderless: 1, longestGap: 30 * time.Second}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := judge([][]tenures.Tenure{c.tenures}, from, to); got != c.want {
				t.Errorf("judge(%v) = %+v, want %+v", c.tenures, got, c.want)
			}
		})
	}
}

func TestVerbOfNamesRequestsAsTheAuditLogDoes(t *testing.T) {
	const leases = "https://h/apis/coordination.k8s.io/v1/namespaces/ns/leases"
	cases := map[string]struct{ method, url string }{
		"GET":   {http.MethodGet, leases + "/election-1"},
		"LIST":  {http.MethodGet, leases + "?limit=500"},
		"WATCH": {http.MethodGet, leases + "?watch=true&resourceVersion=5"},
		"PUT":   {http.MethodPut, leases + "/election-1"},
		"POST":  {http.MethodPost, leases},
	}
	for want, c := range cases {
		req, err := http.NewRequest(c.method, c.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := verbOf(req); got != want {
			t.Errorf("verbOf(%s %s) = %s, want %s", c.method, c.url, got, want)
		}
	}
}
