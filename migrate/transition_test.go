package migrate

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/migrate/ledger"
	"github.com/mailferry/mailferry/providers"
)

// TestStatusTransitions: setStatus allows exactly the changes of this
// matrix (rows from, columns to; "y" allowed), and refuses the others
// with errTransition, leaving the record as it was.
func TestStatusTransitions(t *testing.T) {
	order := []ledger.Status{noRecord, ledger.StatusPending, ledger.StatusCopied, ledger.StatusDuplicate, ledger.StatusFailed, ledger.StatusRemoved}
	//            to: none pending copied dup failed removed
	matrix := []string{
		/* none      */ ". y . y y .",
		/* pending   */ ". y y y y y",
		/* copied    */ ". . . . . y",
		/* duplicate */ ". . . . . y",
		/* failed    */ ". y . y y .",
		/* removed   */ ". y . y y .",
	}
	for i, from := range order {
		row := strings.Fields(matrix[i])
		for j, to := range order {
			want := row[j] == "y"
			rec := ledger.Record{RecordKey: ledger.RecordKey{SrcValidity: 7, SrcUID: 42}, Status: from, DstUID: 9}
			err := setStatus(&rec, to)
			switch {
			case want && err != nil:
				t.Errorf("%v -> %v refused: %v", from, to, err)
			case want && rec.Status != to:
				t.Errorf("%v -> %v allowed but the status is %v", from, to, rec.Status)
			case !want && err == nil:
				t.Errorf("%v -> %v allowed, want it refused", from, to)
			case !want && (!errors.Is(err, errTransition) || providers.ClassOf(err) != providers.ClassAccount):
				t.Errorf("%v -> %v refused with %v (class %v), want errTransition of class account", from, to, err, providers.ClassOf(err))
			case !want && (rec.Status != from || rec.DstUID != 9):
				t.Errorf("a refused %v -> %v changed the record: %+v", from, to, rec)
			}
		}
	}
	// Every listed transition is in the matrix, with its reason.
	for k, why := range transitions {
		if why == "" {
			t.Errorf("transition %v -> %v has no reason", k[0], k[1])
		}
	}
	if err := setStatus(&ledger.Record{Status: ledger.StatusCopied}, ledger.StatusPending); err == nil ||
		!strings.Contains(err.Error(), "from copied to pending") {
		t.Errorf("the refusal says %v, want it to name both statuses", err)
	}
}
