// Command curcorbench runs one benchmark workload with goroutines and prints
// one JSON line, in the shape benchmarks/workloads.py prints for the Python
// runtimes:
//
//	curcorbench -workload spawn -n 100000
//
// benchmarks/run.py builds it into a temporary directory when a go toolchain
// is on PATH (go build, no dependencies) and starts it once per run. The
// workloads and their sizes are those of benchmarks/workloads.py; read the
// comment block of each workload there for what it measures and why.
//
// Measured: wall_s around the workload only (after a runtime.GC()), gc_s and
// gc_collections from runtime.MemStats (PauseTotalNs and NumGC, before and
// after; Go's collector is concurrent, so this is its stop-the-world pauses,
// not its whole cost), peak_rss_mb from /proc/self/status (VmHWM). Unlike
// the Python runtimes, a goroutine that finishes frees its stack at once, so
// at spawn 1M not all goroutines are alive together: compare RSS with that
// in mind.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The parameters of benchmarks/workloads.py (FANIN_MSGS, ...).
const (
	fanInMsgs      = 10
	fanInCap       = 100
	treeFanout     = 6
	mutexTasks     = 100
	selectChannels = 4
	timersMax      = 500 * time.Millisecond
	timersSeed     = 1
)

// spawn: n goroutines each yield once; a WaitGroup waits for all.
func spawn(n int) int {
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			runtime.Gosched()
			wg.Done()
		}()
	}
	wg.Wait()
	return n
}

// pingpong: a counter passed back and forth n times over unbuffered channels.
func pingpong(n int) int {
	a, b := make(chan int), make(chan int)
	go func() {
		for i := 0; i < n; i++ {
			b <- (<-a) + 1
		}
	}()
	v := 0
	for i := 0; i < n; i++ {
		a <- v
		v = <-b
	}
	return v
}

// fanin: n producers send fanInMsgs values each into one buffered channel.
func fanin(n int) int {
	ch := make(chan int, fanInCap)
	for p := 0; p < n; p++ {
		go func() {
			for i := 0; i < fanInMsgs; i++ {
				ch <- i
			}
		}()
	}
	total := 0
	for i := 0; i < n*fanInMsgs; i++ {
		total += <-ch
	}
	return total
}

// tree: every inner node starts treeFanout children and sums their results.
func tree(depth int) int {
	if depth == 0 {
		return 1
	}
	results := make(chan int, treeFanout)
	for i := 0; i < treeFanout; i++ {
		go func() { results <- tree(depth - 1) }()
	}
	total := 0
	for i := 0; i < treeFanout; i++ {
		total += <-results
	}
	return total
}

// mutex: mutexTasks goroutines take one lock n/mutexTasks times each and
// yield while holding it.
func mutex(n int) int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	counter := 0
	perTask := n / mutexTasks
	wg.Add(mutexTasks)
	for t := 0; t < mutexTasks; t++ {
		go func() {
			for i := 0; i < perTask; i++ {
				mu.Lock()
				counter++
				runtime.Gosched()
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	return counter
}

// selectRecv: selectChannels producers, one unbuffered channel each; main
// receives the values 0..n-1 with a select over the channels.
func selectRecv(n int) int {
	var chans [selectChannels]chan int
	for k := range chans {
		ch := make(chan int)
		chans[k] = ch
		go func(k int) {
			for v := k; v < n; v += selectChannels {
				ch <- v
			}
		}(k)
	}
	total := 0
	for i := 0; i < n; i++ {
		select {
		case v := <-chans[0]:
			total += v
		case v := <-chans[1]:
			total += v
		case v := <-chans[2]:
			total += v
		case v := <-chans[3]:
			total += v
		}
	}
	return total
}

// timers: n goroutines sleep a seeded random time in [0, timersMax).
func timers(n int) int {
	rng := rand.New(rand.NewSource(timersSeed))
	var wg sync.WaitGroup
	var mu sync.Mutex
	finished := 0
	wg.Add(n)
	for i := 0; i < n; i++ {
		d := time.Duration(rng.Float64() * float64(timersMax))
		go func() {
			time.Sleep(d)
			mu.Lock()
			finished++
			mu.Unlock()
			wg.Done()
		}()
	}
	wg.Wait()
	return finished
}

// peakRSSMiB is VmHWM from /proc/self/status, not getrusage's ru_maxrss:
// that one keeps the parent's peak across fork and exec.
func peakRSSMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			fields := strings.Fields(line)
			if len(fields) >= 2 && fields[0] == "VmHWM:" {
				kib, err := strconv.ParseFloat(fields[1], 64)
				if err == nil {
					return kib / 1024
				}
			}
		}
	}
	var usage syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &usage)
	return float64(usage.Maxrss) / 1024
}

func expected(workload string, n int) int {
	switch workload {
	case "spawn", "pingpong", "timers":
		return n
	case "fanin":
		return n * (fanInMsgs * (fanInMsgs - 1) / 2)
	case "tree":
		r := 1
		for i := 0; i < n; i++ {
			r *= treeFanout
		}
		return r
	case "mutex":
		return n / mutexTasks * mutexTasks
	case "select":
		return n * (n - 1) / 2
	}
	return -1
}

func main() {
	workload := flag.String("workload", "", "spawn, pingpong, fanin, tree, "+
		"mutex, select, timers; startup exits at once")
	n := flag.Int("n", 0, "the size, as in benchmarks/workloads.py")
	flag.Parse()
	if *workload == "startup" {
		// The startup workload times this process from outside; it only
		// needs the peak RSS (KiB, like the Python startup code prints).
		fmt.Printf("%.0f\n", peakRSSMiB()*1024)
		return
	}
	funcs := map[string]func(int) int{
		"spawn": spawn, "pingpong": pingpong, "fanin": fanin, "tree": tree,
		"mutex": mutex, "select": selectRecv, "timers": timers,
	}
	fn, ok := funcs[*workload]
	if !ok || *n <= 0 {
		fmt.Fprintf(os.Stderr, "curcorbench: unknown workload %q or n <= 0\n",
			*workload)
		os.Exit(2)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	result := fn(*n)
	wall := time.Since(t0).Seconds()
	runtime.ReadMemStats(&after)

	record := map[string]any{
		"runtime": "go", "workload": *workload, "n": *n, "pid": os.Getpid(),
		"runtime_version": runtime.Version(), "gomaxprocs": runtime.GOMAXPROCS(0),
		"ok": true, "wall_s": wall,
		"gc_s":           float64(after.PauseTotalNs-before.PauseTotalNs) / 1e9,
		"gc_collections": after.NumGC - before.NumGC,
		"peak_rss_mb":    peakRSSMiB(),
	}
	if want := expected(*workload, *n); result != want {
		record["ok"] = false
		record["error"] = fmt.Sprintf("%s returned %d, expected %d", *workload,
			result, want)
	}
	line, _ := json.Marshal(record)
	fmt.Println(string(line))
	if record["ok"] != true {
		os.Exit(1)
	}
}
