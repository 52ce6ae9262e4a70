// ingot.h: the ingot file format, the contract between compiler and runtime.
//
// Both sides include this header and nothing else defines the format;
// docs/ingot.md describes it byte by byte. All integers are little-endian.
//
//   header            64 bytes, at offset 0
//   section table     nsections records of 32 bytes, right after the header
//   sections          each at an offset aligned to 64 bytes, with a CRC-32
//
// A reader checks the magic, the version, the file size, every section's
// bounds, alignment and CRC, and every index and name inside the sections
// before it uses any of it.
#ifndef SMELT_INGOT_H
#define SMELT_INGOT_H

#include <stdint.h>

#define INGOT_MAGIC "SMELTIGT"   // 8 bytes, no terminator
#define INGOT_VERSION 4   // 2: SLOT_TYPES; 3: per-launch buffer tables (LAUNCH_BUFS), BINDINGS; 4: GPU kernels read seed and step from device memory
#define INGOT_MAX_SECTION 16   // the highest section kind
#define INGOT_ALIGN 64
#define INGOT_MAX_DIMS 8
#define INGOT_ZEROS UINT64_MAX   // IngotTensor.data_offset of a tensor that starts at zero

typedef struct {
  char magic[8];          // INGOT_MAGIC
  uint32_t version;       // INGOT_VERSION
  uint32_t nsections;
  uint64_t file_size;     // the whole file, in bytes
  uint32_t header_crc;    // CRC-32 of the section table
  uint32_t reserved[9];   // zero
} IngotHeader;            // 64 bytes

enum {
  SEC_META = 1,      // text: "key=value\n" lines (model, sizes, compiler, targets)
  SEC_STRINGS = 2,   // names, each NUL-terminated; referenced by byte offset
  SEC_TENSORS = 3,   // IngotTensor records
  SEC_ENTRIES = 4,   // IngotEntry records
  SEC_LAUNCHES = 5,  // IngotLaunch records, grouped by entry
  SEC_SLOTS = 6,     // u32 tensor indices: each entry's kernel buffer slots
  SEC_UPDATES = 7,   // IngotUpdate records, grouped by entry
  SEC_HOST_CODE = 8, // an x86-64 ELF shared object holding every host kernel
  SEC_WEIGHTS = 9,   // initial values of parameters and state, per IngotTensor.data_offset
  SEC_GPU_LAUNCHES = 10, // IngotGpuLaunch records, one per IngotLaunch, in the same order
  SEC_GPU_CODE = 11,     // IngotCodeTable, its IngotCode records, then the code they point to
  SEC_COSTS = 12,        // IngotCost records, one per IngotLaunch, in the same order
  SEC_OUTPUTS = 13,      // IngotOutputs records, one per IngotLaunch, in the same order
  SEC_SLOT_TYPES = 14,   // IngotSlotType records, one per slot, in the same order
  SEC_LAUNCH_BUFS = 15,  // u32 slot numbers of the launch's entry: each launch's buffer table, by launch
  SEC_BINDINGS = 16,     // optional: IngotBindingTable, its IngotBinding records, then the other bindings' ingots
};

typedef struct {
  uint32_t kind;          // SEC_*
  uint32_t flags;         // zero
  uint64_t offset;        // from the start of the file, a multiple of INGOT_ALIGN
  uint64_t size;          // bytes
  uint32_t crc;           // CRC-32 (IEEE) of the section's bytes
  uint32_t reserved;
} IngotSection;           // 32 bytes

enum {
  ROLE_INPUT = 1,         // fed by the caller before each run
  ROLE_OUTPUT = 2,        // read by the caller after a run
  ROLE_PARAM = 3,         // persistent and trained; saved with checkpoints
  ROLE_STATE = 4,         // persistent optimizer state; saved with checkpoints
  ROLE_TEMP = 5,          // an intermediate of one entry, in the arena
};

typedef struct {
  uint32_t name;          // offset into STRINGS ("fc1.w", "infer/%12" for temporaries)
  uint32_t dtype;         // 0 f32, 1 f16, 2 bf16, 3 i32, 4 i64, 5 u8, 6 bool
  uint32_t role;          // ROLE_*
  uint32_t ndim;
  int64_t dims[INGOT_MAX_DIMS];
  uint64_t bytes;         // numel * element size
  uint64_t arena_offset;  // ROLE_TEMP: offset in the entry's arena
  uint64_t data_offset;   // ROLE_PARAM, ROLE_STATE: offset of the initial values in WEIGHTS,
                          // or INGOT_ZEROS when they are all zero (not stored)
} IngotTensor;            // 104 bytes

typedef struct {
  uint32_t name;          // "infer", "train_step"
  uint32_t first_launch, nlaunches;   // into LAUNCHES
  uint32_t first_slot, nslots;        // into SLOTS
  uint32_t first_update, nupdates;    // into UPDATES
  uint32_t loss;          // tensor index of the loss, or UINT32_MAX
  uint64_t arena_bytes;   // the arena this entry needs
} IngotEntry;             // 40 bytes

// Launches of kernels alike but for their buffers name one symbol: a
// kernel's code reads buffer b at bufs[b] of the table it is given, and the
// launch's table holds the entry's slots first_buf .. first_buf + nbufs - 1
// of LAUNCH_BUFS (entry slot numbers), in that order.
typedef struct {
  uint32_t symbol;        // offset into STRINGS: the kernel's name in HOST_CODE (and GPU_CODE)
  uint32_t out;           // tensor index it writes
  uint64_t count;         // iterations [0, count) to split over threads: output elements,
                          // or output tiles (never more than the output's elements)
  uint32_t first_buf;     // into LAUNCH_BUFS: each launch's follow the previous launch's
  uint32_t nbufs;         // the kernel's buffers
} IngotLaunch;            // 24 bytes

// How a GPU runs one launch: a one-dimensional grid of blocks. The kernels
// are written for exactly this shape (they loop when the work is larger), so
// every GPU target of the ingot shares the records.
typedef struct {
  uint32_t grid;          // blocks
  uint32_t block;         // threads per block (a multiple of 64)
  uint32_t shared_bytes;  // dynamic shared memory (0: the kernel declares its own)
  uint32_t reserved;      // zero
} IngotGpuLaunch;         // 16 bytes

// The least a launch must move and compute (the compiler's estimate), for
// profiles: achieved bandwidth and FLOP rate.
typedef struct {
  uint64_t bytes_read, bytes_written, flops;
} IngotCost;              // 24 bytes

// Every tensor a launch writes (a fused kernel may write several); the
// launch record's tensor is the first.
#define INGOT_MAX_OUTPUTS 15
typedef struct {
  uint32_t count;         // 1 to INGOT_MAX_OUTPUTS
  uint32_t tensor[INGOT_MAX_OUTPUTS];
} IngotOutputs;           // 64 bytes

// GPU kernels are
//   void NAME(char **bufs, int64_t count, const uint64_t *rng, int64_t *error)
// bufs: the launch's table of device pointers (IngotLaunch), in device memory; rng: the run's
// {seed, step} in device memory, written before the run's first launch (so every launch's
// arguments are the same in every run, and a captured graph replays them); error: a device
// word set to 1 + a node id when a kernel meets a bad index, or to a label
// error (below) when one_hot meets a label outside its classes.
//
// A label error has bit 61 set; bits 45..60 hold the model-file line of the
// call that led to the check, bits 21..44 the label's position in its
// (flattened) tensor and bits 0..20 its value plus 2^20, each clamped to
// its field.
#define INGOT_ERR_LABEL (INT64_C(1) << 61)
#define INGOT_ERR_LINE_SHIFT 45
#define INGOT_ERR_LINE_MAX 0xFFFF
#define INGOT_ERR_POS_SHIFT 21
#define INGOT_ERR_POS_MAX 0xFFFFFF
#define INGOT_ERR_VALUE_BIAS (INT64_C(1) << 20)   // values -2^20 .. 2^20 - 1
enum {
  CODE_PTX = 1,           // PTX text, NUL-terminated, for the driver's JIT
  CODE_CUBIN = 2,         // an NVIDIA ELF from ptxas
  CODE_HSACO = 3,         // an AMD code object (ELF)
};

typedef struct {
  uint32_t count;         // IngotCode records that follow
  uint32_t reserved[7];   // zero
} IngotCodeTable;         // 32 bytes

typedef struct {
  uint32_t target;        // offset into STRINGS: "sm_90", "gfx90a"
  uint32_t format;        // CODE_*
  uint64_t offset;        // from the start of SEC_GPU_CODE
  uint64_t size;          // bytes
  uint32_t report;        // offset into STRINGS: the assembler's resource report ("" if none)
  uint32_t reserved;      // zero
} IngotCode;              // 32 bytes

// What an entry's kernels were compiled to find in a slot: the tensor the
// slot names must have this dtype and size.
typedef struct {
  uint32_t dtype;
  uint32_t reserved;      // zero
  uint64_t bytes;
} IngotSlotType;          // 16 bytes

// An ingot of several bindings of one size variable (smelt build -D B=1,8,64)
// is the ingot of the first binding listed, with a BINDINGS section holding
// the others as whole ingots without a BINDINGS section (each checked as a
// file would be).
// Every binding has the same parameters and state (names, dtypes, shapes),
// so one checkpoint serves them all.
typedef struct {
  uint32_t count;         // IngotBinding records that follow, 2 to INGOT_MAX_BINDINGS
  uint32_t reserved[7];   // zero
} IngotBindingTable;      // 32 bytes

#define INGOT_MAX_BINDINGS 32
typedef struct {
  char var[32];           // the size variable ("B"), NUL-terminated and NUL-padded; the same in every record
  int64_t value;          // its value in this binding; the records in increasing order
  uint64_t offset;        // from the start of SEC_BINDINGS, a multiple of INGOT_ALIGN; 0 for this ingot itself
  uint64_t size;          // bytes; 0 for this ingot itself
  uint64_t reserved;      // zero
} IngotBinding;           // 64 bytes

typedef struct {
  uint32_t target;        // a ROLE_PARAM or ROLE_STATE tensor
  uint32_t value;         // the tensor whose value it takes after the run
} IngotUpdate;            // 8 bytes

// CRC-32 (IEEE 802.3, reflected, as zlib's crc32) of n bytes.
uint32_t smelt_crc32(const void *data, uint64_t n);
// The CRC-32 of the bytes that gave crc followed by n more (as zlib's crc32:
// smelt_crc32(d, n) is smelt_crc32_update(0, d, n)).
uint32_t smelt_crc32_update(uint32_t crc, const void *data, uint64_t n);
// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of
// TFRecord framing (TensorBoard's event files); "123456789" gives 0xE3069283.
uint32_t smelt_crc32c(const void *data, uint64_t n);

#endif
