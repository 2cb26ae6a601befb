package devserver

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/shared/config"
)

// Settings are the dev stack's own settings (FLOWGATE_DEV_* and where
// things listen). Everything else in the environment that starts with
// FLOWGATE_ is handed to the functions, as the template hands them theirs.
type Settings struct {
	// Addr is where the API and the page are served (FLOWGATE_ADDR).
	Addr string
	// WebDir is the page's directory (FLOWGATE_WEB_DIR); empty or missing
	// serves no page.
	WebDir string
	// MinIOAddr and DynaliteAddr are where MinIO and dynalite listen
	// (FLOWGATE_MINIO_ADDR, FLOWGATE_DYNALITE_ADDR).
	MinIOAddr, DynaliteAddr string
	// DynamoDBAddr is where the emulated DynamoDB (with its stream and
	// TTL, in front of dynalite) listens (FLOWGATE_DEV_DYNAMODB_ADDR): the
	// endpoint for anything outside the stack that writes to the table,
	// such as `sam local`'s functions. Empty picks a free port.
	DynamoDBAddr string
	// Instances is how many upload function instances serve the API
	// (FLOWGATE_DEV_INSTANCES, 1 to 16).
	Instances int
	// Assemblers is how many assemble function instances the event source
	// mapping's parallel batches share (FLOWGATE_DEV_ASSEMBLERS, 1 to 10:
	// the template's ParallelizationFactor).
	Assemblers int
	// TTLDelay is how long an expired record stays readable before the
	// emulated TTL deletes it (FLOWGATE_DEV_TTL_DELAY).
	TTLDelay time.Duration
	// RedriveInterval is the re-drive function's schedule
	// (FLOWGATE_DEV_REDRIVE_INTERVAL; the template says every 5 minutes).
	RedriveInterval time.Duration
	// Duplicates is the chance that the mapping delivers a batch the
	// assembler took once more (FLOWGATE_DEV_DUPLICATES, 0 to 1).
	Duplicates float64
	// StreamRetention is how long the ledger's stream keeps a record
	// (FLOWGATE_DEV_STREAM_RETENTION; 24h as on AWS). The records are held
	// in memory: a long, busy session may want less.
	StreamRetention time.Duration
	// DoorAddr is where browsers reach MinIO over plain HTTP on the direct
	// data path (FLOWGATE_DEV_S3_DOOR_ADDR; see s3notify.Door). Empty picks
	// a free port.
	DoorAddr string
	// DropNotifications is the chance that a notification of a stored
	// chunk is dropped, as if S3 had never sent it
	// (FLOWGATE_DEV_DROP_NOTIFICATIONS, 0 to 1; direct data path).
	DropNotifications float64
	// NotifyRetryDelays are the waits before the two retries of a failed
	// counting invocation (Lambda's: about one and two minutes); tests
	// shorten them.
	NotifyRetryDelays []time.Duration
}

// Defaults of the dev stack's settings.
const (
	DefaultInstances  = 3
	DefaultAssemblers = 3
	// DefaultTTLDelay: AWS deletes an expired item "within a few days";
	// ten minutes is long enough that code trusting a prompt delete
	// misbehaves in a dev session, short enough to see the REMOVE happen.
	DefaultTTLDelay        = 10 * time.Minute
	DefaultRedriveInterval = time.Minute
	DefaultDuplicates      = 0.1
)

// LoadSettings reads the settings from getenv.
func LoadSettings(getenv func(string) string) (Settings, error) {
	e := config.NewEnv(getenv)
	s := Settings{
		Addr:            e.String("FLOWGATE_ADDR", "127.0.0.1:8080"),
		WebDir:          e.String("FLOWGATE_WEB_DIR", "./web"),
		MinIOAddr:       e.String("FLOWGATE_MINIO_ADDR", "127.0.0.1:9000"),
		DynaliteAddr:    e.String("FLOWGATE_DYNALITE_ADDR", "127.0.0.1:4567"),
		DynamoDBAddr:    e.String("FLOWGATE_DEV_DYNAMODB_ADDR", "127.0.0.1:4568"),
		Instances:       e.Int("FLOWGATE_DEV_INSTANCES", DefaultInstances),
		Assemblers:      e.Int("FLOWGATE_DEV_ASSEMBLERS", DefaultAssemblers),
		TTLDelay:        e.Duration("FLOWGATE_DEV_TTL_DELAY", DefaultTTLDelay),
		RedriveInterval: e.Duration("FLOWGATE_DEV_REDRIVE_INTERVAL", DefaultRedriveInterval),
		Duplicates:      DefaultDuplicates,
		StreamRetention: e.Duration("FLOWGATE_DEV_STREAM_RETENTION", 24*time.Hour),
		DoorAddr:        e.String("FLOWGATE_DEV_S3_DOOR_ADDR", "127.0.0.1:9001"),
	}
	if v := strings.TrimSpace(getenv("FLOWGATE_DEV_DROP_NOTIFICATIONS")); v != "" {
		p, err := strconv.ParseFloat(v, 64)
		if err != nil || p < 0 || p > 1 {
			e.Fail("FLOWGATE_DEV_DROP_NOTIFICATIONS: %q is not a probability from 0 to 1", v)
		}
		s.DropNotifications = p
	}
	if v := strings.TrimSpace(getenv("FLOWGATE_DEV_DUPLICATES")); v != "" {
		p, err := strconv.ParseFloat(v, 64)
		if err != nil || p < 0 || p > 1 {
			e.Fail("FLOWGATE_DEV_DUPLICATES: %q is not a probability from 0 to 1", v)
		}
		s.Duplicates = p
	}
	if s.Instances < 1 || s.Instances > 16 {
		e.Fail("FLOWGATE_DEV_INSTANCES must be from 1 to 16")
	}
	if s.Assemblers < 1 || s.Assemblers > 10 {
		e.Fail("FLOWGATE_DEV_ASSEMBLERS must be from 1 to 10")
	}
	if s.TTLDelay < 0 {
		e.Fail("FLOWGATE_DEV_TTL_DELAY must not be negative")
	}
	if s.StreamRetention < time.Minute || s.StreamRetention > 24*time.Hour {
		e.Fail("FLOWGATE_DEV_STREAM_RETENTION must be from 1m to 24h")
	}
	if s.RedriveInterval < time.Second {
		e.Fail("FLOWGATE_DEV_REDRIVE_INTERVAL must be at least 1s")
	}
	for _, a := range []struct{ name, addr string }{
		{"FLOWGATE_ADDR", s.Addr}, {"FLOWGATE_MINIO_ADDR", s.MinIOAddr}, {"FLOWGATE_DYNALITE_ADDR", s.DynaliteAddr},
		{"FLOWGATE_DEV_DYNAMODB_ADDR", s.DynamoDBAddr}, {"FLOWGATE_DEV_S3_DOOR_ADDR", s.DoorAddr},
	} {
		if err := loopback(a.addr); err != nil {
			e.Fail("%s: %v", a.name, err)
		}
	}
	return s, e.Err()
}

// loopback refuses an address that is not on 127.0.0.1: the dev stack is
// for this machine only.
func loopback(addr string) error {
	host, _, ok := strings.Cut(addr, ":")
	if !ok || (host != "127.0.0.1" && host != "localhost") {
		return fmt.Errorf("%q: the dev stack listens on 127.0.0.1 only (127.0.0.1:port)", addr)
	}
	return nil
}

// devOnly are the variables the dev stack reads itself and does not hand
// to the functions.
var devOnly = map[string]bool{
	"FLOWGATE_ADDR": true, "FLOWGATE_WEB_DIR": true,
	"FLOWGATE_MINIO_ADDR": true, "FLOWGATE_DYNALITE_ADDR": true,
}

// functionSettings are the FLOWGATE_* variables of environ meant for the
// functions, with the dev stack's defaults for the bucket and table.
func functionSettings(environ []string) map[string]string {
	out := map[string]string{"FLOWGATE_BUCKET": "flowgate-dev", "FLOWGATE_TABLE": "flowgate-dev"}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "FLOWGATE_") || strings.HasPrefix(k, "FLOWGATE_DEV_") || devOnly[k] {
			continue
		}
		if strings.TrimSpace(v) == "" {
			continue
		}
		out[k] = v
	}
	return out
}
