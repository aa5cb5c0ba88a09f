package web_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/flowiq-gateway/flowiq-gateway/gateway"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline"
	"github.com/flowiq-gateway/flowiq-gateway/web"
)

// spectrumSource is a radio source whose demodulator reports counters and
// a spectrum (gateway.RadioReport), as a radio source may.
type spectrumSource struct{ pipeline.HexSource }

func (spectrumSource) RadioReport() gateway.RadioReport {
	bits, floor := int64(17), -95.5
	db := make([]float32, 64)
	for i := range db {
		db[i] = -95
	}
	db[20], db[21], db[22] = -70, -55, -72 // a meter at 868.95 MHz
	return gateway.RadioReport{CorrectedBits: &bits, NoiseFloorDBFS: &floor,
		Spectrum: &gateway.Spectrum{StartHz: 868.7e6, StepHz: 12.5e3, DBFS: db}}
}

func TestRadioSpectrumInChromium(t *testing.T) {
	st, err := gateway.NewStatus(gateway.StatusOptions{Sources: []pipeline.Source{&spectrumSource{}}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := web.New(web.Config{Addr: "127.0.0.1:0", Model: st, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	b := browser(t)
	do(t, b, navigate("http://"+srv.Addr().String()+"/#radio"))
	waitJS(t, b, "the spectrum", `!!document.querySelector("#radio-body svg.chart polyline.spec")`)
	waitJS(t, b, "its frequency axis", `[...document.querySelectorAll("#radio-body svg text")].some(e => e.textContent === "868.700 MHz")`)
	waitJS(t, b, "the noise floor and corrected bits", `document.getElementById("radio-body").textContent.includes("-95.5 dBFS") && document.getElementById("radio-body").textContent.includes("Corrected bits17")`)
}
