package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The status page and the HTML report are checked in a real browser:
// Debian's chromium, installed by .ci/run, driven over CDP by chromedp.

// chromium returns the browser's path. Without it the test is skipped, but
// with CI=true it fails: CI must not pass by skipping.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is required when CI=true (.ci/run installs Debian's chromium)")
	}
	t.Skip("chromium not installed (apt-get install chromium); skipping the browser check")
	return ""
}

// screenshotDir is where the browser tests keep their screenshots: a temp
// dir that outlives the test, so CI can keep it as an artifact. It is
// logged, never committed.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "mailferry-screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rendered is what the browser made of a page.
type rendered struct {
	text       string   // the body's rendered text (innerText)
	requests   []string // every URL the browser asked for, the page's own included
	screenshot string   // PNG path
}

// render opens url in headless chromium and returns its text, the URLs it
// requested and a full-page screenshot saved as name.png.
func render(t *testing.T, url, name string) rendered {
	t.Helper()
	path := chromium(t)
	// Without the background networking flags (chromedp's defaults and
	// these) Chromium reaches for Google's hosts at every start.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1100, 1400))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	var mu sync.Mutex
	var r rendered
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			r.requests = append(r.requests, e.Request.URL)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	tctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()
	if err := chromedp.Do(tctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("chromium: open %s: %v", url, err)
	}
	if r.text, err = chromedp.Run(tctx, chromedp.Text(chromedp.CSS("body"))); err != nil {
		t.Fatalf("chromium: text of %s: %v", url, err)
	}
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("chromium: screenshot of %s: %v", url, err)
	}
	r.screenshot = filepath.Join(screenshotDir(t), name+".png")
	if err := os.WriteFile(r.screenshot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of %s: %s", url, r.screenshot)
	mu.Lock()
	defer mu.Unlock()
	r.requests = append([]string(nil), r.requests...)
	return r
}

// externalRef finds what in a page's source could make a browser fetch
// something: a src, href, action or srcset attribute, a CSS url() or
// @import, other than a fragment, a data: URL or (when allowed) a relative
// link to the same server.
var externalRef = regexp.MustCompile(`(?i)(?:\b(?:src|href|action|srcset|poster|data)\s*=\s*["']?([^"'\s>]+))|url\(\s*["']?([^"')]+)|@import`)

// fetchesNothingElse checks that the browser requested only the page, and
// that the page's source references nothing it could load later.
func fetchesNothingElse(t *testing.T, r rendered, pageURL, source string, sameServer bool) {
	t.Helper()
	for _, u := range r.requests {
		if u != pageURL && !strings.HasPrefix(u, "data:") {
			t.Errorf("the page at %s made the browser fetch %s", pageURL, u)
		}
	}
	if len(r.requests) == 0 {
		t.Errorf("the browser reported no request at all for %s: the check sees nothing", pageURL)
	}
	for _, m := range externalRef.FindAllStringSubmatch(source, -1) {
		ref := m[1] + m[2]
		switch {
		case strings.HasPrefix(m[0], "@"):
			t.Errorf("the page imports a style sheet: %q", m[0])
		case strings.HasPrefix(ref, "#"), strings.HasPrefix(ref, "data:"):
		case sameServer && !strings.Contains(ref, ":") && !strings.HasPrefix(ref, "//"):
		default:
			t.Errorf("the page references %q, which a browser would fetch", ref)
		}
	}
}
