package store

import (
	"strconv"
	"time"

	"github.com/hookgate/hookgate/internal/jsontext"
)

// encodeEvent is json.Marshal(e), byte for byte, written without reflection: every
// event is encoded in the group commit, once as it is stored and again at each change
// of its deliveries. TestEncodeEventIsMarshal holds the two equal, every field set.
func encodeEvent(e *Event) ([]byte, error) {
	b := make([]byte, 0, 512)
	b = appendStringField(b, `{"uuid":`, e.UUID)
	b = appendStringField(b, `,"eventId":`, e.EventID)
	b = appendOmitString(b, `,"type":`, e.Type)
	b = appendStringField(b, `,"partnerNamespace":`, e.PartnerNamespace)
	b = appendStringField(b, `,"partner":`, e.Partner)
	b = appendStringField(b, `,"endpointNamespace":`, e.EndpointNamespace)
	b = appendStringField(b, `,"endpoint":`, e.Endpoint)
	b, err := appendTimeField(b, `,"receivedAt":`, e.ReceivedAt)
	if err != nil {
		return nil, err
	}
	b = appendStringField(b, `,"payloadSHA256":`, e.PayloadSHA256)
	b = strconv.AppendInt(append(b, `,"sizeBytes":`...), e.SizeBytes, 10)
	b = appendOmitString(b, `,"contentType":`, e.ContentType)
	b = appendOmitString(b, `,"subType":`, e.SubType)
	b = appendOmitString(b, `,"tenant":`, e.Tenant)
	b = appendOmitString(b, `,"reason":`, e.Reason)
	b = appendStringField(b, `,"phase":`, e.Phase)
	if b, err = appendAttemptFields(b, e.Attempts, e.LastAttemptAt, e.NextAttemptAt, e.LastResponseCode, e.LastError, e.DeliveredAt, e.AttemptBase); err != nil {
		return nil, err
	}
	if len(e.Deliveries) > 0 {
		b = append(b, `,"deliveries":[`...)
		for i := range e.Deliveries {
			d := &e.Deliveries[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = appendStringField(b, `{"destination":`, d.Destination)
			b = appendStringField(b, `,"phase":`, d.Phase)
			if b, err = appendAttemptFields(b, d.Attempts, d.LastAttemptAt, d.NextAttemptAt, d.LastResponseCode, d.LastError, d.DeliveredAt, d.AttemptBase); err != nil {
				return nil, err
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = strconv.AppendUint(append(b, `,"version":`...), e.Version, 10)
	return append(b, '}'), nil
}

// appendAttemptFields appends the attempt fields an Event and a DeliveryState share, in
// their declared order.
func appendAttemptFields(b []byte, attempts int32, last, next *time.Time, code int32, lastError string, delivered *time.Time, base int32) ([]byte, error) {
	var err error
	b = appendOmitInt(b, `,"attempts":`, attempts)
	if b, err = appendOmitTime(b, `,"lastAttemptAt":`, last); err != nil {
		return nil, err
	}
	if b, err = appendOmitTime(b, `,"nextAttemptAt":`, next); err != nil {
		return nil, err
	}
	b = appendOmitInt(b, `,"lastResponseCode":`, code)
	b = appendOmitString(b, `,"lastError":`, lastError)
	if b, err = appendOmitTime(b, `,"deliveredAt":`, delivered); err != nil {
		return nil, err
	}
	return appendOmitInt(b, `,"attemptBase":`, base), nil
}

func appendStringField(b []byte, name, s string) []byte {
	return jsontext.AppendString(append(b, name...), s)
}

func appendOmitString(b []byte, name, s string) []byte {
	if s == "" {
		return b
	}
	return appendStringField(b, name, s)
}

func appendOmitInt(b []byte, name string, n int32) []byte {
	if n == 0 {
		return b
	}
	return strconv.AppendInt(append(b, name...), int64(n), 10)
}

func appendTimeField(b []byte, name string, t time.Time) ([]byte, error) {
	text, err := t.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return append(append(b, name...), text...), nil
}

func appendOmitTime(b []byte, name string, t *time.Time) ([]byte, error) {
	if t == nil {
		return b, nil
	}
	return appendTimeField(b, name, *t)
}
