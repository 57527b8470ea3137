package trail

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

const (
	crashDirEnv = "TRAIL_CRASH_CHILD_DIR"
	crashKeyEnv = "TRAIL_CRASH_CHILD_KEY"
)

// TestCrashChild is the child side of TestCrashKeepsAcknowledged: it appends
// from several goroutines, checkpointing often, and prints every
// acknowledged record until it is killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestCrashKeepsAcknowledged")
	}
	signer, err := note.NewSigner(os.Getenv(crashKeyEnv))
	if err != nil {
		t.Fatal(err)
	}
	l, err := OpenFile(dir, FileOptions{Signer: signer, CheckpointInterval: 3 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = l.Run(context.Background()) }()
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				rec := mkRec(i)
				rec.ID = fmt.Sprintf("w%d-%d", w, i)
				seqs, err := l.Append(context.Background(), rec, rec) // two per call
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %d %s\nack %d %s\n", seqs[0], rec.ID, seqs[1], rec.ID)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestCrashKeepsAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	skey, vkey, err := note.GenerateKey(nil, "northbank-pdp")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	dir := t.TempDir()
	for round := range 3 { // each round reopens what the previous kill left
		acked := map[uint64]string{}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashKeyEnv+"="+skey)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "ack" {
				continue
			}
			seq, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			acked[seq] = f[2]
			if len(acked) == 400 {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		_ = cmd.Wait()
		if len(acked) < 400 {
			t.Fatalf("round %d: child stopped after %d acks", round, len(acked))
		}

		l, err := OpenFile(dir, FileOptions{Signer: signer})
		if err != nil {
			t.Fatal(err)
		}
		if l.Damaged() != nil {
			t.Fatalf("round %d: %v", round, l.Damaged())
		}
		for seq, id := range acked {
			rec, err := l.Get(seq)
			if err != nil || rec.ID != id {
				t.Fatalf("round %d: acknowledged record %d (%s): got %+v, %v", round, seq, id, rec, err)
			}
		}
		rep, err := l.Verify(context.Background(), vkey, 0, ^uint64(0))
		if err != nil || !rep.OK {
			t.Fatalf("round %d: verify after kill: %+v %v", round, rep, err)
		}
		t.Logf("round %d: %d acknowledged, %d in trail, %d checkpoints, recovery %+v",
			round, len(acked), l.Size(), rep.Checkpoints, l.Recovery())
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
