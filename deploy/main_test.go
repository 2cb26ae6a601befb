package deploy

import (
	"os"
	"testing"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
)

// The stream filter is checked on records the real ledger writes to a real
// dynalite, which localaws starts (and the tests fail, never skip, if it
// cannot).
func TestMain(m *testing.M) { os.Exit(localaws.RunTests(m)) }
