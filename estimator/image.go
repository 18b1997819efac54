package estimator

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // register GIF for image.DecodeConfig
	_ "image/jpeg" // register JPEG
	_ "image/png"  // register PNG
	"strings"
)

// Image is one image part of a chat message.
type Image struct {
	URL    string // as given: a data: URL or a remote URL
	Detail string // "low", "high" or "auto" ("" = auto)
	// Inline images only: the media type and decoded size.
	MediaType     string
	Data          []byte // the decoded bytes of a data: URL
	Width, Height int
}

// Remote reports whether the image is fetched by the provider from a URL,
// so its size is unknown here.
func (im Image) Remote() bool { return im.Data == nil }

// VisionRule is how a model bills an image, after OpenAI's "Calculating
// costs" rule for tile-based models: a low-detail image costs Base tokens;
// a high- or auto-detail image is scaled to fit within 2048×2048, then so
// its shortest side is at most 768 px, and costs Base + Tile per 512-px tile.
type VisionRule struct {
	Base, Tile int64
	Exact      bool // the model is documented to bill by this rule
}

// VisionRuleFor is the rule for a model name. gpt-4o, gpt-4.1, gpt-4.5 and
// gpt-4-turbo bill 85 + 170 per tile and gpt-4o-mini 2833 + 5667 per tile
// (OpenAI's vision guide, confirmed by measured usage). Other models
// (gpt-4.1-mini/nano, o-series, gpt-5: patch-based or with their own
// multipliers, which measurements do not yet settle) are counted by the
// 85/170 rule and marked approximate.
func VisionRuleFor(model string) VisionRule {
	m := strings.ToLower(model)
	switch {
	case strings.HasPrefix(m, "gpt-4o-mini"):
		return VisionRule{Base: 2833, Tile: 5667, Exact: true}
	case strings.HasPrefix(m, "gpt-4.1-mini"), strings.HasPrefix(m, "gpt-4.1-nano"):
		return VisionRule{Base: 85, Tile: 170}
	case strings.HasPrefix(m, "gpt-4o"), strings.HasPrefix(m, "chatgpt-4o"),
		strings.HasPrefix(m, "gpt-4.1"), strings.HasPrefix(m, "gpt-4.5"),
		strings.HasPrefix(m, "gpt-4-turbo"):
		return VisionRule{Base: 85, Tile: 170, Exact: true}
	}
	return VisionRule{Base: 85, Tile: 170}
}

// Tokens is what an image of w×h pixels costs at this detail. Images are
// only scaled down, never up.
func (r VisionRule) Tokens(w, h int, detail string) int64 {
	if detail == "low" || w <= 0 || h <= 0 {
		return r.Base
	}
	w, h = ScaleForTiles(w, h)
	tiles := int64((w+511)/512) * int64((h+511)/512)
	return r.Base + r.Tile*tiles
}

// ScaleForTiles applies the documented scaling: fit within 2048×2048, then
// bring the shortest side down to 768 (aspect kept, fractions dropped).
func ScaleForTiles(w, h int) (int, int) {
	if long := max(w, h); long > 2048 {
		w, h = int(int64(w)*2048/int64(long)), int(int64(h)*2048/int64(long))
	}
	if short := min(w, h); short > 768 {
		w, h = int(int64(w)*768/int64(short)), int(int64(h)*768/int64(short))
	}
	return max(w, 1), max(h, 1)
}

// ImageTokens is what im costs under r, and whether that is approximate
// (a remote image, counted as low detail since its size is unknown here,
// or a model whose rule is not documented as r).
func (r VisionRule) ImageTokens(im Image) (int64, bool) {
	if im.Remote() {
		return r.Base, true
	}
	return r.Tokens(im.Width, im.Height, im.Detail), !r.Exact
}

// parseImageURL reads an image_url value: a data: URL is decoded and its
// size read from the header; any other URL is kept as remote.
func parseImageURL(raw, detail string) (Image, error) {
	im := Image{URL: raw, Detail: detail}
	switch detail {
	case "", "auto", "low", "high":
	default:
		return im, fmt.Errorf("detail %q: expected \"low\", \"high\" or \"auto\"", detail)
	}
	if !strings.HasPrefix(strings.ToLower(raw), "data:") {
		if raw == "" {
			return im, errors.New("empty; expected a data: URL or an http(s) URL")
		}
		return im, nil
	}
	meta, payload, ok := strings.Cut(raw[len("data:"):], ",")
	if !ok {
		return im, errors.New("data: URL without a comma before its data")
	}
	mt, isB64 := strings.CutSuffix(meta, ";base64")
	if !isB64 {
		return im, errors.New("data: URL is not base64 (expected data:image/...;base64,...)")
	}
	data, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		if data, err = base64.RawStdEncoding.DecodeString(payload); err != nil {
			return im, errors.New("data: URL: invalid base64")
		}
	}
	im.MediaType, im.Data = mt, data
	im.Width, im.Height, err = imageSize(data)
	if err != nil {
		return im, err
	}
	return im, nil
}

// imageSize reads an image's dimensions from its header: PNG, JPEG and GIF
// through the standard decoders, WebP (VP8, VP8L, VP8X) by hand.
func imageSize(data []byte) (int, int, error) {
	if len(data) >= 12 && string(data[0:4]) == "RIFF" && string(data[8:12]) == "WEBP" {
		return webpSize(data)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return 0, 0, errors.New("cannot read the image's size: not a PNG, JPEG, GIF or WebP image, or a damaged one")
	}
	return cfg.Width, cfg.Height, nil
}

// webpSize reads the canvas size from a WebP header (RFC 9649).
func webpSize(b []byte) (int, int, error) {
	bad := errors.New("cannot read the image's size: damaged WebP header")
	if len(b) < 30 {
		return 0, 0, bad
	}
	chunk, body := string(b[12:16]), b[20:]
	switch chunk {
	case "VP8X": // flags(1) reserved(3) width-1(3) height-1(3)
		w := 1 + int(uint32(body[4])|uint32(body[5])<<8|uint32(body[6])<<16)
		h := 1 + int(uint32(body[7])|uint32(body[8])<<8|uint32(body[9])<<16)
		return w, h, nil
	case "VP8 ": // frame tag(3), start code 9d 01 2a, 14-bit width and height
		if body[3] != 0x9d || body[4] != 0x01 || body[5] != 0x2a {
			return 0, 0, bad
		}
		w := int(binary.LittleEndian.Uint16(body[6:8]) & 0x3fff)
		h := int(binary.LittleEndian.Uint16(body[8:10]) & 0x3fff)
		return w, h, nil
	case "VP8L": // signature 0x2f, then 14-bit width-1 and height-1
		if body[0] != 0x2f {
			return 0, 0, bad
		}
		v := binary.LittleEndian.Uint32(body[1:5])
		return 1 + int(v&0x3fff), 1 + int(v>>14&0x3fff), nil
	}
	return 0, 0, bad
}
