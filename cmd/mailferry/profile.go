package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/spf13/pflag"
)

// profiles are the hidden flags behind docs/benchmarks.md's profiles.
type profiles struct {
	cpu, mem, block string
	cpuFile         *os.File
}

func (p *profiles) addFlags(f *pflag.FlagSet) {
	f.StringVar(&p.cpu, "cpuprofile", "", "write a CPU profile to this file")
	f.StringVar(&p.mem, "memprofile", "", "write a heap profile to this file at exit")
	f.StringVar(&p.block, "blockprofile", "", "write a block profile to this file at exit")
	for _, n := range []string{"cpuprofile", "memprofile", "blockprofile"} {
		f.MarkHidden(n)
	}
}

func (p *profiles) start() error {
	if p.block != "" {
		runtime.SetBlockProfileRate(int(1e5)) // one sample per 100µs blocked
	}
	if p.cpu == "" {
		return nil
	}
	f, err := os.Create(p.cpu)
	if err != nil {
		return fmt.Errorf("cpuprofile: %w", err)
	}
	p.cpuFile = f
	return pprof.StartCPUProfile(f)
}

func (p *profiles) stop() error {
	if p.cpuFile != nil {
		pprof.StopCPUProfile()
		p.cpuFile.Close()
	}
	for _, w := range []struct{ path, name string }{{p.mem, "heap"}, {p.block, "block"}} {
		if w.path == "" {
			continue
		}
		f, err := os.Create(w.path)
		if err != nil {
			return err
		}
		if w.name == "heap" {
			runtime.GC()
		}
		err = pprof.Lookup(w.name).WriteTo(f, 0)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
