package gateway

import (
	"math"
	"time"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kamstrup"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// maxReceivers bounds the receivers kept per meter; the one heard longest
// ago makes room.
const maxReceivers = 8

// receiverStat is what one receiver heard of one meter.
type receiverStat struct {
	name      string
	telegrams uint64
	sumSNR    float64 // of measured telegrams, for the mean
	measured  uint64
	last      wmbus.Radio
	lastSeen  time.Time
}

// ReceiverDoc is one receiver that hears a meter.
type ReceiverDoc struct {
	Name        string    `json:"name"`
	Telegrams   uint64    `json:"telegrams"`
	MeanSNRdB   *float64  `json:"mean_snr_db,omitempty"`
	LevelDBFS   *float64  `json:"level_dbfs,omitempty"`
	SNRdB       *float64  `json:"snr_db,omitempty"`
	DeviceLevel *int      `json:"device_level,omitempty"`
	LastSeen    time.Time `json:"last_seen"`
}

// hearReceivers counts the receivers that heard a reading's telegram:
// every receiver of the copies, or the one receiver that named itself.
func (my *myMeter) hearReceivers(r *kamstrup.Reading) {
	radios := r.Receivers
	if len(radios) == 0 && r.Radio.Receiver != "" {
		radios = []wmbus.Radio{r.Radio}
	}
	for _, rd := range radios {
		if rd.Receiver == "" {
			continue
		}
		st := my.receiver(rd.Receiver)
		st.telegrams++
		st.last, st.lastSeen = rd, r.Time
		if rd.Measured() {
			st.sumSNR += rd.SNRdB
			st.measured++
		}
	}
}

// receiver returns the meter's record of a receiver, making room for a new
// one by forgetting the receiver heard longest ago.
func (my *myMeter) receiver(name string) *receiverStat {
	oldest := -1
	for i := range my.receivers {
		if my.receivers[i].name == name {
			return &my.receivers[i]
		}
		if oldest < 0 || my.receivers[i].lastSeen.Before(my.receivers[oldest].lastSeen) {
			oldest = i
		}
	}
	if len(my.receivers) < maxReceivers {
		my.receivers = append(my.receivers, receiverStat{name: name})
		return &my.receivers[len(my.receivers)-1]
	}
	my.receivers[oldest] = receiverStat{name: name}
	return &my.receivers[oldest]
}

// receiverDocs lists the meter's receivers and names the one that hears it
// best: the highest mean SNR, else (receivers that measure no SNR, a
// VW1871) the highest level of its last telegram.
func (my *myMeter) receiverDocs() ([]ReceiverDoc, string) {
	if len(my.receivers) == 0 {
		return nil, ""
	}
	docs := make([]ReceiverDoc, 0, len(my.receivers))
	best, bestScore := "", math.Inf(-1)
	for _, st := range my.receivers {
		d := ReceiverDoc{Name: st.name, Telegrams: st.telegrams, LastSeen: st.lastSeen.UTC()}
		fillRadio(st.last, &d.LevelDBFS, &d.SNRdB, &d.DeviceLevel)
		score := float64(st.last.DeviceLevel) - 1e6 // below any measured SNR
		if st.measured > 0 {
			mean := math.Round(10*st.sumSNR/float64(st.measured)) / 10
			d.MeanSNRdB, score = &mean, mean
		}
		if score > bestScore {
			best, bestScore = st.name, score
		}
		docs = append(docs, d)
	}
	return docs, best
}
