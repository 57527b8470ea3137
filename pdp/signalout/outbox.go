package signalout

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// ErrLocked: another process has the outbox open.
var ErrLocked = errors.New("the signal outbox is in use by another process (give each replica its own signals.outgoing.outbox_path)")

// entry is one line of the outbox file: a SET queued for a receiver, or
// the end of one (delivered, or refused by the receiver).
type entry struct {
	Op       string `json:"op"` // "queue" or "done"
	JTI      string `json:"jti"`
	Receiver string `json:"receiver,omitempty"` // the receiver's endpoint
	SET      string `json:"set,omitempty"`
	Outcome  string `json:"outcome,omitempty"` // delivered, refused
	// Application is the application the receiver named when the SET
	// was queued ("" for none): the one whose reading rule let it in.
	Application string `json:"application,omitempty"`
	// check: read from the outbox for a receiver naming an application,
	// to be checked again before it is sent (Release); not stored.
	check bool
}

// about names the event of e's SET and the id it is about (the
// delegation_id of a delegation event, the consent_event_id of a consent
// one); "" when the SET cannot be read as one event of the PDP. The outbox
// is the PDP's own file, so its SETs' payloads are read without
// verification.
func (e entry) about() (name, id string) {
	parts := strings.Split(e.SET, ".")
	if len(parts) != 3 {
		return "", ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", ""
	}
	var claims struct {
		Events map[string]struct {
			Delegation string `json:"delegation_id"`
			Consent    string `json:"consent_event_id"`
		} `json:"events"`
	}
	if json.Unmarshal(raw, &claims) != nil || len(claims.Events) != 1 {
		return "", ""
	}
	for uri, p := range claims.Events {
		i := strings.LastIndex(uri, "/events/")
		if i < 0 {
			return "", ""
		}
		switch name = uri[i+len("/events/"):]; name {
		case ConsentWithdrawn:
			return name, p.Consent
		case DelegationRevoked, DelegationSuspended, DelegationRenounced:
			return name, p.Delegation
		}
	}
	return "", ""
}

// outbox is the persistent queue: an append-only JSON-lines file,
// rewritten with only the pending SETs when it is opened. A line is
// written before the change call returns (it survives the PDP's crash) and
// fsynced by the delivery loop before the SET is sent.
type outbox struct {
	mu   sync.Mutex
	path string
	f    *os.File
	lock *os.File // path.lock, flocked while open
	size int64    // bytes written since the file was last emptied
}

// openOutbox reads the SETs still pending in path (in order) and rewrites
// the file with them alone.
func openOutbox(path string) (*outbox, []entry, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, nil, fmt.Errorf("signal outbox: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("signal outbox: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, ErrLocked)
	}
	box, pending, err := readOutbox(path)
	if err != nil {
		_ = lock.Close()
		return nil, nil, err
	}
	box.lock = lock
	return box, pending, nil
}

// readOutbox reads and rewrites the outbox (its lock held).
func readOutbox(path string) (*outbox, []entry, error) {
	var pending []entry
	if f, err := os.Open(path); err == nil {
		done := map[string]bool{}
		var queued []entry
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var e entry
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue // a torn last line from a crash
			}
			switch e.Op {
			case "queue":
				queued = append(queued, e)
			case "done":
				done[e.JTI] = true
			}
		}
		err := sc.Err()
		_ = f.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("signal outbox %s: %w", path, err)
		}
		for _, e := range queued {
			if !done[e.JTI] {
				pending = append(pending, e)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("signal outbox: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("signal outbox: %w", err)
	}
	w := bufio.NewWriter(f)
	for _, e := range pending {
		line, _ := json.Marshal(e)
		_, _ = w.Write(append(line, '\n'))
	}
	if err := errors.Join(w.Flush(), f.Sync(), f.Close(), os.Rename(tmp, path)); err != nil {
		return nil, nil, fmt.Errorf("signal outbox: %w", err)
	}
	f, err = os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("signal outbox: %w", err)
	}
	return &outbox{path: path, f: f}, pending, nil
}

// append writes entries (not yet fsynced).
func (o *outbox) append(es ...entry) error {
	var buf []byte
	for _, e := range es {
		line, err := json.Marshal(e)
		if err != nil {
			return err
		}
		buf = append(append(buf, line...), '\n')
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return errors.New("signal outbox is closed")
	}
	n, err := o.f.Write(buf)
	o.size += int64(n)
	return err
}

// compactAt is the size beyond which an outbox with nothing pending is
// emptied (a variable for tests).
var compactAt int64 = 1 << 20

// compact empties the file when it has grown past compactAt; the caller
// knows nothing is pending (every queued line has its done line).
func (o *outbox) compact() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil || o.size < compactAt {
		return nil
	}
	if err := o.f.Truncate(0); err != nil {
		return err
	}
	o.size = 0
	return o.f.Sync()
}

// sync makes what was appended durable.
func (o *outbox) sync() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return nil
	}
	return o.f.Sync()
}

func (o *outbox) close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return nil
	}
	err := errors.Join(o.f.Sync(), o.f.Close(), o.lock.Close())
	o.f = nil
	return err
}
