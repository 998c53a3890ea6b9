package e2e

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// figures collects the durations the suite measures, by name, for the
// summary printed when the suite ends (go test -v shows it).
var figures = struct {
	sync.Mutex
	byName map[string][]time.Duration
}{byName: map[string][]time.Duration{}}

func addFigure(name string, d time.Duration) {
	figures.Lock()
	defer figures.Unlock()
	figures.byName[name] = append(figures.byName[name], d)
}

func writeFigures(w io.Writer) {
	figures.Lock()
	defer figures.Unlock()
	if len(figures.byName) == 0 {
		return
	}
	names := make([]string, 0, len(figures.byName))
	for name := range figures.byName {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%-44s %5s %10s %10s\n", "figure", "runs", "median", "max")
	for _, name := range names {
		ds := slices.Clone(figures.byName[name])
		slices.Sort(ds)
		fmt.Fprintf(&b, "%-44s %5d %10v %10v\n", name, len(ds), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	}
	_, _ = io.WriteString(w, b.String())
}
