package receiver

import (
	"encoding/json"
	"sync"

	"github.com/hookgate/hookgate/internal/routing"
)

// Bounds of what a receiver reports of its filters' failures on its Lease.
const (
	maxReportedFilterFailures = 64
	maxFilterFailureMessage   = 256
)

// filterFailureLog keeps the first evaluation failure of each destination's filter under
// the routing table in force, for the receiver's Lease (routing.AnnotationFilterFailures):
// the operator shows it in the endpoint's status.destinations[].filterError. A new
// table starts it afresh, so a mended expression's old failure goes with it.
type filterFailureLog struct {
	mu     sync.Mutex
	serial uint64
	first  map[string]string // endpoint key/destination -> message
}

func newFilterFailureLog() *filterFailureLog { return &filterFailureLog{first: map[string]string{}} }

// record keeps msg as the destination's first failure under the table of serial.
func (l *filterFailureLog) record(serial uint64, ep *routing.Endpoint, destination, msg string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if serial != l.serial {
		l.serial, l.first = serial, map[string]string{}
	}
	key := routing.Key(ep.Namespace, ep.Name) + "/" + destination
	if _, ok := l.first[key]; ok || len(l.first) >= maxReportedFilterFailures {
		return
	}
	if len(msg) > maxFilterFailureMessage {
		msg = msg[:maxFilterFailureMessage]
	}
	l.first[key] = msg
}

// annotations is the report for the Lease: the failures under the table the receiver
// serves now, or none.
func (l *filterFailureLog) annotations(current *routing.Table) map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if current == nil || current.Serial != l.serial || len(l.first) == 0 {
		return map[string]string{routing.AnnotationFilterFailures: ""}
	}
	raw, err := json.Marshal(l.first)
	if err != nil {
		return nil
	}
	return map[string]string{routing.AnnotationFilterFailures: string(raw)}
}
