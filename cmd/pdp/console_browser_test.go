package main

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// consoleScreenshots rewrites docs/console-*.png from the browser test:
//
//	go test ./cmd/pdp -run TestConsoleInBrowser -console-screenshots
var consoleScreenshots = flag.Bool("console-screenshots", false, "write the console's screenshots to docs/console-*.png")

// maxScreenshot is the size a screenshot in docs/ may have.
const maxScreenshot = 300 << 10

// chromium finds a headless-capable Chromium or Chrome; the browser tests
// skip, loudly, without one (.ci/run installs the Debian package).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PDP_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("SKIPPED: no Chromium found (apt-get install -y chromium, or set PDP_TEST_CHROMIUM): the console's browser test did not run")
	return ""
}

// newChrome starts a headless Chromium for one test. dialogs counts the
// JavaScript dialogs pages opened (a script ran).
func newChrome(t *testing.T) (context.Context, *atomic.Int32) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // CI runs as root
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-gpu", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	// A script that runs would open a dialog (alert(1)): fail on any.
	dialogs := new(atomic.Int32)
	if err := chromedp.Listen(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs.Add(1)
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx, dialogs
}

// TestConsoleInBrowser is the auditor's walk through the console in a real
// browser: an application key is refused; the auditor signs in, filters
// for bob's denied payment after alice's revoke, opens it and sees the
// chain with the revoked link and the "reproduced" and "anchored" stamps;
// a recorded id that is markup shows as text (and runs nothing); a verify
// run of the trail finishes OK.
func TestConsoleInBrowser(t *testing.T) {
	ctx, dialogs := newChrome(t)
	defer func() {
		if n := dialogs.Load(); n > 0 {
			t.Errorf("a script ran in the console: %d dialogs opened", n)
		}
	}()
	st := newConsoleStory(t)
	base := st.s.URL
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+jsonString(sel)+`).length`))
		if err != nil {
			t.Fatalf("count %s: %v", sel, err)
		}
		return n
	}
	// shot saves the viewport, or the element sel when given.
	shot := func(name string, sel ...string) {
		t.Helper()
		if !*consoleScreenshots {
			return
		}
		capture := chromedp.CaptureScreenshot()
		if len(sel) > 0 {
			capture = chromedp.Screenshot(chromedp.CSS(sel[0]))
		}
		png, err := chromedp.Run(ctx, capture)
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if len(png) > maxScreenshot {
			t.Errorf("screenshot %s is %d bytes, over %d", name, len(png), maxScreenshot)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "console-"+name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	signIn := func(key string) {
		t.Helper()
		run("sign in", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS("#key")),
			chromedp.SendKeys(chromedp.CSS("#key"), key), chromedp.Click(chromedp.CSS("#signin")))
	}

	signIn("demo-key-mobile-banking")
	run("refusal page", chromedp.WaitVisible(chromedp.CSS("#error-message")))
	if got := text("#error-status") + " " + text("#error-message"); !strings.Contains(got, "403") || !strings.Contains(got, "application") {
		t.Fatalf("an application key: %q, want a 403 page naming application keys", got)
	}

	signIn("demo-key-auditor")
	run("decisions", chromedp.WaitVisible(chromedp.CSS("#decisions")))
	shot("decisions")
	run("filter for bob's denied payments",
		chromedp.SendKeys(chromedp.CSS(`input[name="subject"]`), "user:bob"),
		chromedp.SetValue(chromedp.CSS(`select[name="result"]`), "deny"),
		chromedp.SendKeys(chromedp.CSS(`input[name="reason"]`), "delegation_revoked"),
		chromedp.Click(chromedp.CSS("#apply")))
	// The unfiltered list holds the same link: wait for the filtered page.
	for range 50 {
		// Read errors are the page changing under the read: try again.
		if n, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#count"))); err == nil && strings.HasPrefix(n, "1 matching") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	run("the filtered list", chromedp.WaitVisible(chromedp.CSS(`a[href="/console/decisions/`+st.denied+`"]`)))
	if rows := text("#decisions tbody"); strings.Contains(rows, st.allowed) || !strings.Contains(rows, st.denied) {
		t.Fatalf("filtered list:\n%s", rows)
	}

	// The checkpoint that anchors it comes within trail.checkpoint_interval.
	var anchor string
	for range 20 {
		run("open the decision", chromedp.Navigate(base+"/console/decisions/"+st.denied), chromedp.WaitVisible(chromedp.CSS("#stamp-anchor")))
		if anchor = text("#stamp-anchor"); strings.Contains(anchor, "anchored by checkpoint") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !strings.Contains(anchor, "anchored by checkpoint") || !strings.Contains(anchor, "signed by key") {
		t.Errorf("anchor stamp %q", anchor)
	}
	if r := text("#stamp-replay"); !strings.Contains(r, "Reproduced under version") {
		t.Errorf("replay stamp %q", r)
	}
	if v := text("#verdict"); v != "DENIED" {
		t.Errorf("verdict %q", v)
	}
	broken := count(`svg.chain g.edge.broken[data-delegation="poa-alice-bob"]`)
	if chain := text("#chain"); broken != 1 || !strings.Contains(chain, "broken link: revoked") {
		t.Errorf("chain: %d broken poa-alice-bob edges, text:\n%s", broken, chain)
	}
	shot("decision")
	shot("chain", "#chain")

	run("alice's page", chromedp.Click(chromedp.CSS(`a[href="/console/customers/user:alice"]`)), chromedp.WaitVisible(chromedp.CSS("#given")))
	if given := text("#given"); !strings.Contains(given, "poa-alice-bob") || !strings.Contains(given, "revoked") {
		t.Errorf("alice's delegations given:\n%s", given)
	}
	shot("customer")

	run("the markup id", chromedp.Navigate(base+"/console/decisions/"+st.xss), chromedp.WaitVisible(chromedp.CSS("#explanation")))
	scripts := count("script")
	if words := text("#explanation"); scripts != 0 || !strings.Contains(words, xssID) {
		t.Errorf("%d script elements; the id should read as text in:\n%s", scripts, words)
	}

	run("marketing to carol", chromedp.Navigate(base+"/console/decisions/"+st.consent), chromedp.WaitVisible(chromedp.CSS("#consent")))
	if n := count(`svg.timeline g.event.used`); n == 0 {
		t.Errorf("the consent timeline marks no grant the decision relied on")
	}
	shot("consent", "#consent")

	run("trail", chromedp.Navigate(base+"/console/trail"), chromedp.WaitVisible(chromedp.CSS("#latest-checkpoint")))
	shot("trail")
	run("verify", chromedp.Click(chromedp.CSS("#verify")), chromedp.WaitVisible(chromedp.CSS("#verify-status")))
	var status string
	for range 40 {
		status = text("#verify-status")
		if !strings.HasPrefix(status, "Running") {
			break
		}
		time.Sleep(250 * time.Millisecond) // the page reloads itself each second
	}
	if !strings.Contains(status, "OK in") {
		t.Errorf("verify run: %q", status)
	}
}
