package main

// Go's collector lets the heap grow to twice what was live at the last
// collection. With many accounts at once, each holding whole the messages
// it checks before sending (up to 4 MiB each), that doubling was most of a
// batch's peak memory: 84 MiB at --concurrency 32 where 40 MiB of heap
// sufficed. A soft limit makes the collector run sooner instead; it is
// soft, so a run whose live data needs more still gets it (the runtime
// then caps the collector's CPU, it does not fail), and an admin's
// GOMEMLIMIT wins.

// memoryLimit is the soft heap limit for a run of concurrency accounts at
// once: 32 MiB, and 256 KiB more per account.
func memoryLimit(concurrency int) int64 {
	return 32<<20 + int64(max(concurrency, 1))*256<<10
}

// limitMemory sets the soft limit for a run, unless GOMEMLIMIT is set or
// the app was made without a setter (tests in this process).
func (a *app) limitMemory(concurrency int) {
	if a.setMemoryLimit == nil || a.getenv("GOMEMLIMIT") != "" {
		return
	}
	a.setMemoryLimit(memoryLimit(concurrency))
}
