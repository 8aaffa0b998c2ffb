package receiver

import (
	"net/netip"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"os"
)

// Audit outcomes.
const (
	outcomeAccepted  = "accepted"
	outcomeDuplicate = "duplicate"
	outcomeRejected  = "rejected"
	outcomeAnswered  = "answered" // status and health queries
)

// auditRecord is one request's audit line: who, where, what happened. It never holds a
// key, a signature, a token or a payload.
type auditRecord struct {
	requestID string
	route     string
	clientIP  netip.Addr
	partner   string
	endpoint  string
	outcome   string
	reason    string
	status    int
	uuid      string
	eventID   string
}

// NewAuditLogger writes one JSON line per request to stdout, under the logger name audit.
func NewAuditLogger() *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "time"
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(os.Stdout), zapcore.InfoLevel)
	return zap.New(core).Named("audit")
}

func (s *Server) audit(rec *auditRecord, took time.Duration) {
	s.metrics.observeRequest(rec.route, rec.outcome, rec.reason, rec.status, took)
	if rec.route == "event" && rec.partner != "" {
		s.metrics.observePartnerEvent(rec.partner, rec.outcome)
		s.usage.add(rec.partner, rec.outcome, rec.reason, s.now())
	}
	if s.auditLog == nil {
		return
	}
	fields := []zap.Field{
		zap.String("requestId", rec.requestID),
		zap.String("route", rec.route),
		zap.String("clientIP", rec.clientIP.String()),
		zap.String("outcome", rec.outcome),
		zap.Int("status", rec.status),
		zap.Duration("took", took),
	}
	for _, f := range []struct{ k, v string }{{"partner", rec.partner}, {"endpoint", rec.endpoint}, {"reason", rec.reason}, {"uuid", rec.uuid}, {"eventId", rec.eventID}} {
		if f.v != "" {
			fields = append(fields, zap.String(f.k, f.v))
		}
	}
	s.auditLog.Info("request", fields...)
}
