package wmbus

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
)

// Telegram-level errors, each wrapped in a *MeterError naming the meter.
var (
	// ErrWrongKey: decryption with the configured key does not verify
	// (payload CRC for ELL, 2F2F for TPL mode 5) and nothing suggests the
	// frame itself is damaged.
	ErrWrongKey = errors.New("wrong key")
	// ErrNoKey: the telegram is encrypted and no key is known for the meter.
	ErrNoKey = errors.New("no key for this encrypted meter")
	// ErrPayloadCRC: the ELL payload CRC does not verify although the key
	// demonstrably fits (the application CI decrypts to a known value, or
	// the key has verified for this meter before): the frame is damaged.
	ErrPayloadCRC = errors.New("payload CRC mismatch: frame corrupted")
	// ErrUnsupportedCI: a control information field this decoder has no
	// layer for.
	ErrUnsupportedCI = errors.New("unsupported CI")
	// ErrUnsupportedSecurity: an ELL or TPL encryption mode other than
	// ELL AES-128-CTR and TPL security mode 5.
	ErrUnsupportedSecurity = errors.New("unsupported security mode")
	// ErrKeySize: the configured key is not 16 bytes.
	ErrKeySize = errors.New("key is not 16 bytes (32 hex digits)")
)

// Detail wrapped around the sentinels; built once so the error path
// allocates only the *MeterError.
var (
	errWrongKeyELL   = fmt.Errorf("%w (payload CRC mismatch)", ErrWrongKey)
	errWrongKeyTPL   = fmt.Errorf("%w (decrypted data does not start with 2F 2F)", ErrWrongKey)
	errCorruptTPL    = fmt.Errorf("%w: decrypted data does not start with 2F 2F although the key verified before", ErrPayloadCRC)
	errPlainCRC      = fmt.Errorf("%w (unencrypted extended link layer)", ErrPayloadCRC)
	errEndCRC        = fmt.Errorf("%w: the payload verifies without its last 2 bytes, so they are a format B CRC that does not match", ErrBlockCRC)
	errShortELL      = fmt.Errorf("%w: extended link layer cut off", ErrShort)
	errShortTPL      = fmt.Errorf("%w: transport layer header cut off", ErrShort)
	errShortApp      = fmt.Errorf("%w: no application CI after the extended link layer", ErrShort)
	errShortTPLBlock = fmt.Errorf("%w: fewer bytes than the encrypted blocks announced in the TPL configuration", ErrShort)
)

// Security says which encryption was removed from a telegram.
type Security uint8

const (
	SecurityNone   Security = iota // sent in plaintext
	SecurityELLCTR                 // ELL AES-128-CTR (Kamstrup C1)
	SecurityTPL5                   // TPL security mode 5, AES-128-CBC (OMS)
)

func (s Security) String() string {
	switch s {
	case SecurityELLCTR:
		return "ELL AES-128-CTR"
	case SecurityTPL5:
		return "TPL mode 5 AES-128-CBC"
	default:
		return "none"
	}
}

// ELL is the extended link layer (CI 0x8C–0x8F); CI is 0 when absent.
type ELL struct {
	CI           byte
	CC           byte // communication control
	ACC          byte // access number
	Manufacturer Manufacturer
	Address      [6]byte // ID, version, type (CI 0x8E/0x8F only)
	HasAddress   bool
	SN           uint32 // session number (CI 0x8D/0x8F only)
	HasSN        bool
	PayloadCRC   uint16
}

// Encryption is the SN's encryption field: 0 none, 1 AES-128-CTR.
func (e ELL) Encryption() uint8 { return uint8(e.SN >> 29) }

// TPL is the transport layer header (CI 0x7A short / 0x72 long); CI is 0
// when absent.
type TPL struct {
	CI     byte
	ACC    byte
	Status byte
	Config uint16
	// Long header (CI 0x72) only: the meter behind the radio.
	ID           ID
	Manufacturer Manufacturer
	Version      byte
	DeviceType   byte
}

// Mode is the security mode from the configuration field.
func (t TPL) Mode() uint8 { return uint8(t.Config>>8) & 0x1F }

// Telegram is one parsed, decrypted frame.
type Telegram struct {
	Header   Header
	Format   Format // form the frame arrived in
	ELL      ELL
	TPL      TPL
	Security Security // encryption that was removed
	// AppCI is the CI of the application data: 0x78 (records), 0x79
	// (Kamstrup compact), or 0x7A/0x72 when records follow a TPL header.
	AppCI byte
	// App is the application data after AppCI. It aliases the Parser's
	// buffer and is valid until the Parser's next Parse.
	App []byte
}

// Meter returns the meter's ID: the TPL long header's when present (the
// link-layer address then belongs to the radio part), else the DLL's.
func (t *Telegram) Meter() ID {
	if t.TPL.CI == 0x72 {
		return t.TPL.ID
	}
	return t.Header.ID
}

// AccessNumber is the telegram counter: the ELL's when present, else the TPL's.
func (t *Telegram) AccessNumber() byte {
	if t.ELL.CI != 0 {
		return t.ELL.ACC
	}
	return t.TPL.ACC
}

// KeyFunc returns the AES-128 key of a meter, or false when none is known.
type KeyFunc func(ID) ([]byte, bool)

// appCIs are the application CIs handed on to the layer above as they are.
var appCIs = [256]bool{0x78: true, 0x79: true}

// maxKeys bounds the cipher cache; past it the cache starts over.
const maxKeys = 4096

type keyState struct {
	block cipher.Block
	okID  ID // a meter this key has verified for
	ok    bool
}

// Parser turns frames into Telegrams. It owns the scratch buffer the
// Telegram's App points into and a cache of AES ciphers keyed by key bytes,
// so that parsing allocates nothing once each key has been seen. The zero
// value is ready to use; a Parser is not safe for concurrent use.
type Parser struct {
	buf     [maxFrameLen + 2]byte
	iv      [aes.BlockSize]byte
	ks      [aes.BlockSize]byte
	prev    [aes.BlockSize]byte
	ciphers map[[16]byte]*keyState
}

// Parse detects the frame's form (A, B, or CRC-less), verifies and strips
// link-layer CRCs, reads the DLL header and the ELL/TPL layers, decrypts
// with the key keys returns for the meter, and verifies the result. keys
// may be nil when no meter has a key. Errors about a known meter are
// *MeterError values.
func (p *Parser) Parse(frame []byte, keys KeyFunc, t *Telegram) error {
	*t = Telegram{}
	plain, f, err := AppendDetect(p.buf[:0], frame)
	return p.parse(frame, plain, f, err, keys, t)
}

// ParseForm is Parse for a frame whose form the caller knows (a
// demodulator that saw the sync word): no detection, so a CRC-less frame
// can never be mistaken for format B by a chance CRC match.
func (p *Parser) ParseForm(frame []byte, f Format, keys KeyFunc, t *Telegram) error {
	*t = Telegram{}
	plain, err := AppendStripped(p.buf[:0], frame, f)
	if err == nil && len(plain) < headerLen+1 {
		err = fmt.Errorf("%w: %d bytes, a telegram has at least %d", ErrShort, len(plain), headerLen+1)
	}
	return p.parse(frame, plain, f, err, keys, t)
}

func (p *Parser) parse(frame, plain []byte, f Format, err error, keys KeyFunc, t *Telegram) error {
	if err != nil {
		if len(frame) >= 8 {
			return &MeterError{ID: idAt(frame[4:8]), Err: err}
		}
		return err
	}
	t.Format = f
	h, err := ParseHeader(plain)
	if err != nil {
		return err
	}
	t.Header = h
	if err := p.parseLayers(plain, keys, t); err != nil {
		return &MeterError{ID: t.Meter(), Err: err}
	}
	return nil
}

func (p *Parser) parseLayers(plain []byte, keys KeyFunc, t *Telegram) error {
	off := headerLen
	ci := plain[off]
	if ci >= 0x8C && ci <= 0x8F {
		next, err := p.parseELL(plain, keys, t)
		if err != nil {
			return err
		}
		off = next
		if off >= len(plain) {
			return errShortApp
		}
		ci = plain[off]
	}
	switch {
	case ci == 0x7A || ci == 0x72:
		return p.parseTPL(plain, off, keys, t)
	case appCIs[ci]:
		t.AppCI = ci
		t.App = plain[off+1:]
		return nil
	default:
		return fmt.Errorf("%w 0x%02X at offset %d", ErrUnsupportedCI, ci, off)
	}
}

// ELL layouts after the CI byte: which fields each variant carries.
var ellLayouts = map[byte]struct{ addr, sn bool }{
	0x8C: {false, false},
	0x8D: {false, true},
	0x8E: {true, false},
	0x8F: {true, true},
}

// parseELL reads the ELL at offset 10, removes its encryption and returns
// the offset of the next CI.
func (p *Parser) parseELL(plain []byte, keys KeyFunc, t *Telegram) (int, error) {
	lay := ellLayouts[plain[headerLen]]
	e := &t.ELL
	e.CI = plain[headerLen]
	off := headerLen + 1
	need := 2
	if lay.addr {
		need += 8
	}
	if lay.sn {
		need += 6
	}
	if len(plain) < off+need {
		return 0, errShortELL
	}
	e.CC, e.ACC = plain[off], plain[off+1]
	off += 2
	if lay.addr {
		e.Manufacturer = Manufacturer(uint16(plain[off]) | uint16(plain[off+1])<<8)
		copy(e.Address[:], plain[off+2:off+8])
		e.HasAddress = true
		off += 8
	}
	if !lay.sn {
		return off, nil
	}
	snAt := off
	e.SN = uint32(plain[off]) | uint32(plain[off+1])<<8 | uint32(plain[off+2])<<16 | uint32(plain[off+3])<<24
	e.HasSN = true
	off += 4
	crcAt := off
	payload := plain[crcAt:]

	switch e.Encryption() {
	case 0:
		if !payloadCRCOK(payload) {
			if t.Format == FormatNone && len(payload) > 4 && payloadCRCOK(payload[:len(payload)-2]) {
				return 0, errEndCRC
			}
			return 0, errPlainCRC
		}
	case 1:
		key, ok := lookup(keys, t.Meter())
		if !ok {
			// Some captures are stored already decrypted with the SN
			// untouched: accept them when the payload CRC says so.
			if payloadCRCOK(payload) {
				break
			}
			return 0, ErrNoKey
		}
		ks, err := p.cipher(key)
		if err != nil {
			return 0, err
		}
		p.ellCounter(plain, t, snAt)
		p.ctr(ks.block, payload)
		if !payloadCRCOK(payload) {
			if t.Format == FormatNone && len(payload) > 4 && payloadCRCOK(payload[:len(payload)-2]) {
				return 0, errEndCRC
			}
			plausible := len(payload) > 2 && (appCIs[payload[2]] || payload[2] == 0x7A || payload[2] == 0x72)
			p.ellCounter(plain, t, snAt)
			p.ctr(ks.block, payload) // CTR is its own inverse: back to what was sent
			if payloadCRCOK(payload) {
				break // stored decrypted, SN untouched
			}
			if plausible || (ks.ok && ks.okID == t.Meter()) {
				return 0, ErrPayloadCRC
			}
			return 0, errWrongKeyELL
		}
		ks.ok, ks.okID = true, t.Meter()
		t.Security = SecurityELLCTR
	default:
		return 0, fmt.Errorf("%w: ELL encryption %d", ErrUnsupportedSecurity, e.Encryption())
	}
	e.PayloadCRC = uint16(payload[0]) | uint16(payload[1])<<8
	return crcAt + 2, nil
}

// payloadCRCOK checks a little-endian CRC in front of the bytes it covers.
func payloadCRCOK(b []byte) bool {
	return len(b) >= 2 && CRC(b[2:]) == uint16(b[0])|uint16(b[1])<<8
}

func lookup(keys KeyFunc, id ID) ([]byte, bool) {
	if keys == nil {
		return nil, false
	}
	return keys(id)
}

// ellCounter builds the initial AES-CTR counter block in p.iv:
// M ‖ A ‖ CC&^0x12 ‖ SN ‖ FN=0 ‖ BC=0, with M/A from the ELL when it
// carries them (CI 0x8E/0x8F), else from the link layer.
func (p *Parser) ellCounter(plain []byte, t *Telegram, snAt int) {
	if t.ELL.HasAddress {
		p.iv[0], p.iv[1] = byte(t.ELL.Manufacturer), byte(t.ELL.Manufacturer>>8)
		copy(p.iv[2:8], t.ELL.Address[:])
	} else {
		copy(p.iv[0:8], plain[2:10])
	}
	p.iv[8] = t.ELL.CC &^ 0x12
	copy(p.iv[9:13], plain[snAt:snAt+4])
	p.iv[13], p.iv[14], p.iv[15] = 0, 0, 0
}

// ctr XORs b in place with the AES-CTR keystream starting at p.iv, the
// counter counting up as one big-endian 128-bit integer (as cipher.NewCTR
// does, without its per-call allocation).
func (p *Parser) ctr(block cipher.Block, b []byte) {
	for len(b) > 0 {
		block.Encrypt(p.ks[:], p.iv[:])
		n := min(len(b), aes.BlockSize)
		for i := range n {
			b[i] ^= p.ks[i]
		}
		b = b[n:]
		for i := aes.BlockSize - 1; i >= 0; i-- {
			p.iv[i]++
			if p.iv[i] != 0 {
				break
			}
		}
	}
}

// parseTPL reads a TPL header at off, removes security mode 5 and sets the
// application data.
func (p *Parser) parseTPL(plain []byte, off int, keys KeyFunc, t *Telegram) error {
	tp := &t.TPL
	tp.CI = plain[off]
	hdr := 4
	if tp.CI == 0x72 {
		hdr = 12
	}
	if len(plain) < off+1+hdr {
		return errShortTPL
	}
	b := plain[off+1:]
	if tp.CI == 0x72 {
		tp.ID = idAt(b[0:4])
		tp.Manufacturer = Manufacturer(uint16(b[4]) | uint16(b[5])<<8)
		tp.Version, tp.DeviceType = b[6], b[7]
		b = b[8:]
	}
	tp.ACC, tp.Status = b[0], b[1]
	tp.Config = uint16(b[2]) | uint16(b[3])<<8
	data := b[4:]
	t.AppCI = tp.CI
	t.App = data
	switch tp.Mode() {
	case 0:
		return nil
	case 5:
	default:
		return fmt.Errorf("%w: TPL security mode %d", ErrUnsupportedSecurity, tp.Mode())
	}
	n := int(tp.Config>>4&0x0F) * aes.BlockSize
	if n > len(data) {
		return errShortTPLBlock
	}
	key, ok := lookup(keys, t.Meter())
	if !ok {
		return ErrNoKey
	}
	ks, err := p.cipher(key)
	if err != nil {
		return err
	}
	// IV = M ‖ A ‖ ACC×8, M/A of the meter (long header) or of the link layer.
	if tp.CI == 0x72 {
		copy(p.iv[0:2], plain[off+5:off+7])
		copy(p.iv[2:6], plain[off+1:off+5])
		p.iv[6], p.iv[7] = tp.Version, tp.DeviceType
	} else {
		copy(p.iv[0:8], plain[2:10])
	}
	for i := 8; i < 16; i++ {
		p.iv[i] = tp.ACC
	}
	p.cbcDecrypt(ks.block, data[:n])
	if n > 0 && (data[0] != 0x2F || data[1] != 0x2F) {
		if ks.ok && ks.okID == t.Meter() {
			return errCorruptTPL
		}
		return errWrongKeyTPL
	}
	ks.ok, ks.okID = true, t.Meter()
	t.Security = SecurityTPL5
	return nil
}

// cbcDecrypt decrypts b (whole blocks) in place with IV p.iv.
func (p *Parser) cbcDecrypt(block cipher.Block, b []byte) {
	for ; len(b) >= aes.BlockSize; b = b[aes.BlockSize:] {
		copy(p.prev[:], b[:aes.BlockSize])
		block.Decrypt(p.ks[:], b[:aes.BlockSize])
		for i := range aes.BlockSize {
			b[i] = p.ks[i] ^ p.iv[i]
		}
		p.iv = p.prev
	}
}

// cipher returns the cached AES cipher for key, creating it on first use.
func (p *Parser) cipher(key []byte) (*keyState, error) {
	if len(key) != 16 {
		return nil, fmt.Errorf("%w: got %d bytes", ErrKeySize, len(key))
	}
	k := [16]byte(key)
	if ks, ok := p.ciphers[k]; ok {
		return ks, nil
	}
	if p.ciphers == nil || len(p.ciphers) >= maxKeys {
		p.ciphers = make(map[[16]byte]*keyState)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	ks := &keyState{block: block}
	p.ciphers[k] = ks
	return ks, nil
}
