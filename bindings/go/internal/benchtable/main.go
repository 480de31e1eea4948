// Command benchtable reads `go test -bench` output of package circuit (run
// with -cpu 1,2 and -count N) on stdin and prints the DESIGN.md section 6
// table for Go: per benchmark the median wall ns/op, the median CPU ns/op
// (process CPU time per operation; with two goroutines, per operation per
// goroutine), how many CPUs were busy (overlap), the ratio to the empty cgo
// call of the same run, and, for the budgeted rows, the ratio to
// gobreaker v2's published figures with PASS/MISS.
//
// gobreaker cannot be run here (no module proxy), so its figures come from
// DESIGN.md (one 2-core x86-64: closed call 134 ns with one goroutine,
// 320 ns per op per thread with two; rejected 71.5 ns; one cgo call
// 45.7 ns on the same machine). Two verdicts are printed: against the
// published nanoseconds as they are, and "floor-normalized", against
// gobreaker scaled by this machine's cgo call over the reference one
// (gobreaker = 2.93 cgo calls), which cancels most of the difference
// between machines.
package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

const httpOverhead = "HTTPTransportOverhead"

const refCgo = 45.7 // ns, one cgo call on the machine of the gobreaker figures

type key struct {
	name  string
	procs int
}

type samples struct {
	wall, cpu, overlap []float64
	other              map[string][]float64 // metrics of other units (HTTPTransportOverhead's)
}

type budget struct {
	peer  float64 // gobreaker v2, ns per op (per thread)
	limit float64 // our time / peer must be <= limit; 0: no budget, ratio shown for information
	what  string
}

var budgets = map[key]budget{
	{"ExecuteClosed", 1}:       {134, 0.67, "gobreaker v2 closed call, 1 goroutine"},
	{"ExecuteClosed", 2}:       {320, 0.25, "gobreaker v2 closed call, GOMAXPROCS=2"},
	{"AllowDoneClosed", 1}:     {134, 0, "gobreaker v2 closed call, 1 goroutine"},
	{"AllowDoneClosed", 2}:     {320, 0, "gobreaker v2 closed call, GOMAXPROCS=2"},
	{"ExecuteRejectedOpen", 1}: {71.5, 0.5, "gobreaker v2 rejected call"},
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func main() {
	data := map[key]*samples{}
	var order []key
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name, procs := strings.TrimPrefix(f[0], "Benchmark"), 1
		if i := strings.LastIndex(name, "-"); i > 0 {
			if p, err := strconv.Atoi(name[i+1:]); err == nil {
				name, procs = name[:i], p
			}
		}
		k := key{name, procs}
		s := data[k]
		if s == nil {
			s = &samples{}
			data[k] = s
			order = append(order, k)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				s.wall = append(s.wall, v)
			case "cpu-ns/op":
				s.cpu = append(s.cpu, v)
			case "overlap":
				s.overlap = append(s.overlap, v)
			default:
				if s.other == nil {
					s.other = map[string][]float64{}
				}
				s.other[f[i+1]] = append(s.other[f[i+1]], v)
			}
		}
	}
	if len(order) == 0 {
		fmt.Fprintln(os.Stderr, "benchtable: no benchmark lines on stdin")
		os.Exit(1)
	}
	fmt.Printf("%-26s %5s %9s %9s %7s %7s   %s\n", "benchmark", "procs", "wall ns", "cpu ns", "overlap", "x cgo", "vs gobreaker v2 (cpu ns / published ns; floor-normalized)")
	misses := 0
	var notes []string
	var httpLines []string
	for _, k := range order {
		s := data[k]
		if k.name == httpOverhead {
			bare, wrapped := median(s.other["bare-ns"]), median(s.other["wrapped-ns"])
			httpLines = append(httpLines, fmt.Sprintf("%5d %9.1f %10.1f %7.3f %8.2f %9.2f %5d", k.procs, bare/1e3, wrapped/1e3,
				median(s.other["ratio"]), (wrapped-bare)/1e3, median(s.other["bare-iqr-ns"])/1e3, len(s.other["ratio"])))
			continue
		}
		cpu, wall, ov := median(s.cpu), median(s.wall), median(s.overlap)
		cgo := median(data[key{"FloorCgoCall", k.procs}].cpu)
		xcgo := "-"
		if cgo > 0 {
			xcgo = fmt.Sprintf("%.2f", cpu/cgo)
		}
		line := fmt.Sprintf("%-26s %5d %9.1f %9.1f %7.2f %7s", k.name, k.procs, wall, cpu, ov, xcgo)
		if b, ok := budgets[k]; ok {
			raw := cpu / b.peer
			norm := 0.0
			if cgo > 0 {
				norm = (cpu / cgo) / (b.peer / refCgo)
			}
			verdict := func(r float64) string {
				if b.limit == 0 {
					return "info"
				}
				if r <= b.limit {
					return "PASS"
				}
				misses++
				return "MISS"
			}
			limit := "no budget"
			if b.limit > 0 {
				limit = fmt.Sprintf("budget <= %.2f", b.limit)
			}
			line += fmt.Sprintf("   %.2f %s; %.2f %s (%s, %s)", raw, verdict(raw), norm, verdict(norm), limit, b.what)
			if k.procs > 1 && ov < 0.75*float64(k.procs) {
				notes = append(notes, fmt.Sprintf("%s with %d procs: the goroutines overlapped only %.2f CPUs on average (a shared machine); its cpu ns is still the cost per operation per goroutine, but contention between them is under-sampled", k.name, k.procs, ov))
			}
		}
		fmt.Println(line)
	}
	for _, n := range notes {
		fmt.Println("note: " + n)
	}
	fmt.Println("wall ns: median ns/op of the runs (with 2 procs: per operation of the whole run); cpu ns: median process CPU time per operation; x cgo: cpu ns over the empty cgo call's at the same procs")
	if len(httpLines) > 0 {
		fmt.Println()
		fmt.Println("HTTP: circuit.Transport over the bare http.Transport it wraps, GET on loopback (keep-alive), interleaved")
		fmt.Printf("%5s %9s %10s %7s %8s %9s %5s\n", "procs", "bare us", "wrapped us", "ratio", "+us", "noise us", "runs")
		for _, l := range httpLines {
			fmt.Println(l)
		}
		fmt.Println("bare us, wrapped us: median of the runs' median request times; ratio: median of the runs' wrapped/bare;")
		fmt.Println("+us: wrapped - bare; noise us: median of the runs' interquartile range of the bare request times")
	}
	if misses > 0 {
		fmt.Printf("benchtable: %d MISS\n", misses)
	}
}
