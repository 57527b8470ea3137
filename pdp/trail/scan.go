package trail

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// frameFunc sees each complete line of a framed file: its index, offset, and
// payload, or the reason the frame is bad.
type frameFunc func(i int, off int64, payload []byte, bad error) error

// scanResult describes a framed file's layout.
type scanResult struct {
	frames  int   // complete (newline-terminated) lines
	lastOff int64 // offset of the last complete line
	lastBad bool  // the last complete line failed its check
	goodEnd int64 // end of the last complete line
	size    int64 // bytes read; > goodEnd when the file ends in a partial line
	// zeroTail: the scan stopped at a line starting with a NUL byte:
	// space the records file preallocated, never written (or written and
	// never synced). No frame starts with NUL.
	zeroTail bool
}

// scanFrames reads r line by line from offset 0 and calls fn for every
// complete line. A trailing partial line is not passed to fn, and a line
// that starts with a NUL byte ends the scan (zeroTail). size bounds the
// read buffer (bytes expected, or -1 for a whole file).
func scanFrames(r io.Reader, size int64, fn frameFunc) (scanResult, error) {
	bufSize := 1 << 20
	if size >= 0 && size < int64(bufSize) {
		bufSize = int(max(size, 16))
	}
	br := bufio.NewReaderSize(r, bufSize)
	var res scanResult
	var off int64
	for {
		if b, err := br.Peek(1); err == nil && b[0] == 0 {
			res.size, res.zeroTail = off+1, true
			return res, nil
		}
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			payload, bad := parseFrame(bytes.TrimSuffix(line, []byte{'\n'}))
			res.lastOff, res.lastBad = off, bad != nil
			if fn != nil {
				if ferr := fn(res.frames, off, payload, bad); ferr != nil {
					return res, ferr
				}
			}
			res.frames++
			off += int64(len(line))
			res.goodEnd = off
		} else {
			off += int64(len(line))
		}
		if err == io.EOF {
			res.size = off
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("trail: read frames: %w", err)
		}
	}
}
