package devserver

import (
	"bytes"
	"io"
	"sync"
)

// lineFilter passes what the functions log to w, a line at a time, and
// drops the emulator's own chatter (its per-invocation START, END and
// REPORT lines and its "(rapid)" log) and the functions' CloudWatch metric
// lines (embedded metric format), which on AWS go to CloudWatch, not to a
// person reading the logs. Debug keeps everything.
type lineFilter struct {
	w     io.Writer
	debug bool

	mu   sync.Mutex
	part []byte // an unfinished line
}

func (f *lineFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.part = append(f.part, p...)
	for {
		i := bytes.IndexByte(f.part, '\n')
		if i < 0 {
			break
		}
		line := f.part[:i+1]
		if f.debug || !noise(line) {
			f.w.Write(line)
		}
		f.part = f.part[i+1:]
	}
	if len(f.part) > 64<<10 { // a runaway line without an end
		f.w.Write(append(f.part, '\n'))
		f.part = f.part[:0]
	}
	// Keep the buffer from growing with what was consumed.
	f.part = append([]byte(nil), f.part...)
	return len(p), nil
}

func noise(line []byte) bool {
	for _, prefix := range [][]byte{[]byte("START RequestId:"), []byte("END RequestId:"), []byte("REPORT RequestId:")} {
		if bytes.HasPrefix(line, prefix) {
			return true
		}
	}
	return bytes.Contains(line, []byte("(rapid)")) || bytes.HasPrefix(line, []byte("{")) && bytes.Contains(line, []byte(`"_aws":{`))
}
