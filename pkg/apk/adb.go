package apk

import (
	"encoding/binary"
	"fmt"
)

// ADB values are 32-bit little-endian words: 4 bits of type, 28 bits of payload.
// Direct types keep the value in the payload; indirect ones keep an offset into
// the ADB block (apk-tools' doc/apk-v3.5.scd, "WIRE FORMAT").
const (
	typeSpecial uint32 = 0x00000000
	typeInt     uint32 = 0x10000000
	typeInt32   uint32 = 0x20000000
	typeInt64   uint32 = 0x30000000
	typeBlob8   uint32 = 0x80000000
	typeBlob16  uint32 = 0x90000000
	typeBlob32  uint32 = 0xa0000000
	typeArray   uint32 = 0xd0000000
	typeObject  uint32 = 0xe0000000
	typeMask    uint32 = 0xf0000000
	valueMask   uint32 = 0x0fffffff
	valNull     uint32 = 0
)

// adbHeaderLen is the size of struct adb_hdr at the start of every ADB block:
// compat version, version, two reserved bytes, then the root value.
const adbHeaderLen = 8

// heap builds an ADB block the way apk-tools does: an append-only buffer in which
// every value is written at its natural alignment and identical byte strings are
// stored once. The order of writes and the de-duplication decide the exact bytes,
// so the writer replays apk mkpkg's order to produce identical output.
type heap struct {
	buf  []byte
	seen map[string]uint32 // content -> offset of its first aligned copy
	err  error
}

func newHeap() *heap {
	return &heap{buf: make([]byte, adbHeaderLen), seen: make(map[string]uint32)}
}

// raw appends data at the given alignment without consulting or feeding the
// de-duplication table (apk's adb_w_raw).
func (h *heap) raw(data []byte, align int) uint32 {
	for len(h.buf)%align != 0 {
		h.buf = append(h.buf, 0)
	}
	off := len(h.buf)
	h.buf = append(h.buf, data...)
	if uint64(len(h.buf)) > uint64(valueMask) && h.err == nil {
		h.err = fmt.Errorf("%w: metadata exceeds %d bytes", ErrTooLarge, valueMask)
	}
	return uint32(off)
}

// data appends data unless an identical, suitably aligned copy exists
// (apk's adb_w_data). A copy at an unsuitable alignment is superseded.
func (h *heap) data(data []byte, align int) uint32 {
	if off, ok := h.seen[string(data)]; ok && off%uint32(align) == 0 {
		return off
	}
	off := h.raw(data, align)
	h.seen[string(data)] = off
	return off
}

// blobBytes returns the length-prefixed encoding of b, its type and alignment.
func blobBytes(b []byte) (enc []byte, typ uint32, align int) {
	n := len(b)
	switch {
	case n > 0xffff:
		enc = binary.LittleEndian.AppendUint32(nil, uint32(n))
		typ, align = typeBlob32, 4
	case n > 0xff:
		enc = binary.LittleEndian.AppendUint16(nil, uint16(n))
		typ, align = typeBlob16, 2
	default:
		enc = []byte{byte(n)}
		typ, align = typeBlob8, 1
	}
	return append(enc, b...), typ, align
}

// blob stores b and returns its value; an empty blob is null, as in apk.
func (h *heap) blob(b []byte) uint32 {
	if len(b) == 0 {
		return valNull
	}
	enc, typ, align := blobBytes(b)
	return typ | h.data(enc, align)
}

// rawBlob stores b without de-duplication, so that it can be patched in place
// afterwards (apk's adb_w_blob_raw, used for the unique id).
func (h *heap) rawBlob(b []byte) uint32 {
	if len(b) == 0 {
		return valNull
	}
	enc, typ, align := blobBytes(b)
	return typ | h.raw(enc, align)
}

func (h *heap) str(s string) uint32 { return h.blob([]byte(s)) }

// integer stores v inline when it fits in 28 bits, else as a 32- or 64-bit word.
func (h *heap) integer(v uint64) uint32 {
	switch {
	case v < 0x10000000:
		return typeInt | uint32(v)
	case v <= 0xffffffff:
		return typeInt32 | h.data(binary.LittleEndian.AppendUint32(nil, uint32(v)), 4)
	default:
		return typeInt64 | h.data(binary.LittleEndian.AppendUint64(nil, v), 4)
	}
}

// object stores the slots (slot 0 is overwritten with the count) with trailing
// nulls trimmed; an object with no non-null slot is null. typ is typeObject or
// typeArray: apk mkpkg stores its arrays with the object type, and so do we.
func (h *heap) object(slots []uint32, typ uint32) uint32 {
	n := len(slots)
	for n > 1 && slots[n-1] == valNull {
		n--
	}
	if n <= 1 {
		return valNull
	}
	enc := make([]byte, 0, 4*n)
	enc = binary.LittleEndian.AppendUint32(enc, uint32(n))
	for _, v := range slots[1:n] {
		enc = binary.LittleEndian.AppendUint32(enc, v)
	}
	return typ | h.data(enc, 4)
}

// setRoot records the root value in the block header.
func (h *heap) setRoot(v uint32) { binary.LittleEndian.PutUint32(h.buf[4:], v) }

// view decodes values of one ADB block, with bounds checks on every access.
type view struct{ b []byte }

func (v view) at(val uint32, n uint64) ([]byte, error) {
	off := uint64(val & valueMask)
	if off+n > uint64(len(v.b)) {
		return nil, fmt.Errorf("%w: value %#08x reaches past the metadata block (%d bytes)", ErrCorrupt, val, len(v.b))
	}
	return v.b[off : off+n], nil
}

// blob decodes a blob value; null decodes to nil.
func (v view) blob(val uint32) ([]byte, error) {
	var hdr uint64
	switch val & typeMask {
	case typeSpecial:
		if val == valNull {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: special value %#08x where a blob belongs", ErrCorrupt, val)
	case typeBlob8:
		hdr = 1
	case typeBlob16:
		hdr = 2
	case typeBlob32:
		hdr = 4
	default:
		return nil, fmt.Errorf("%w: value %#08x is not a blob", ErrCorrupt, val)
	}
	lb, err := v.at(val, hdr)
	if err != nil {
		return nil, err
	}
	var n uint64
	switch hdr {
	case 1:
		n = uint64(lb[0])
	case 2:
		n = uint64(binary.LittleEndian.Uint16(lb))
	default:
		n = uint64(binary.LittleEndian.Uint32(lb))
	}
	b, err := v.at(val, hdr+n)
	if err != nil {
		return nil, err
	}
	return b[hdr:], nil
}

func (v view) str(val uint32) (string, error) {
	b, err := v.blob(val)
	return string(b), err
}

// integer decodes an integer value; null decodes to 0.
func (v view) integer(val uint32) (uint64, error) {
	switch val & typeMask {
	case typeSpecial:
		if val == valNull {
			return 0, nil
		}
	case typeInt:
		return uint64(val & valueMask), nil
	case typeInt32:
		b, err := v.at(val, 4)
		if err != nil {
			return 0, err
		}
		return uint64(binary.LittleEndian.Uint32(b)), nil
	case typeInt64:
		b, err := v.at(val, 8)
		if err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint64(b), nil
	}
	return 0, fmt.Errorf("%w: value %#08x is not an integer", ErrCorrupt, val)
}

// slots decodes an object or array into its slots, slot 0 being the count;
// null decodes to a single slot. Reading past the end yields null, as in apk.
func (v view) slots(val uint32) ([]uint32, error) {
	switch val & typeMask {
	case typeSpecial:
		if val == valNull {
			return []uint32{1}, nil
		}
	case typeObject, typeArray:
		head, err := v.at(val, 4)
		if err != nil {
			return nil, err
		}
		n := uint64(binary.LittleEndian.Uint32(head))
		if n == 0 {
			return nil, fmt.Errorf("%w: object at %#x has no slots", ErrCorrupt, val&valueMask)
		}
		b, err := v.at(val, 4*n)
		if err != nil {
			return nil, err
		}
		out := make([]uint32, n)
		for i := range out {
			out[i] = binary.LittleEndian.Uint32(b[4*i:])
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: value %#08x is not an object", ErrCorrupt, val)
}

// slot returns field i of an object, or null when the object is shorter.
func slot(s []uint32, i int) uint32 {
	if i < len(s) {
		return s[i]
	}
	return valNull
}
