"""Run freestanding Arm ELFs in unicorn and count the instructions they execute.

    emu = Emulator("kernel.elf", "cortex-m4")
    emu.write("input", x.tobytes())
    emu.call("entry", a, b)             # integer/pointer args per AAPCS (r0-r3, then the stack) / AAPCS64
    y = emu.read("output", n)
    emu.instructions                    # exact count of instructions the last call executed

Cores: "cortex-m0plus", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55" (Thumb, M-profile; FPU
enabled where the core has one) and "cortex-a53", "cortex-a76" (AArch64, FP/NEON enabled). Unicorn has
no Cortex-M0+ or M55 models: m0plus runs on its Cortex-M0 model (same ARMv6-M ISA) and m55 on its
Cortex-M33 model (ARMv8-M mainline + DSP + FPv5; no MVE/Helium). cortex-a76 runs on unicorn's "max"
AArch64 model (ARMv8.x with dotprod, so SDOT runs; no i8mm, as on a real A76), cortex-a53 on its
A53 model (SDOT faults, as on a real A53).

Counting: a UC_HOOK_BLOCK hook (registered as a raw ctypes callback) adds the instruction count of
each executed translation block; AArch64 blocks hold size/4 instructions, Thumb blocks are split into
16/32-bit instructions once per (address, size) by the architectural length rule (first halfword
0b11101/0b11110/0b11111 in bits 15:11 => 32-bit) and cached. Speed: ~15-30 M instructions/s.
``Emulator(..., exact_hook="code")`` counts with a per-instruction UC_HOOK_CODE hook instead (~3-5 M/s);
the two agree exactly except that unicorn fires no code hook for Thumb IT instructions (QEMU folds
IT into its translation state), which the block count includes, as the hardware executes them.
Instructions in an IT block whose condition fails are counted by both, as hardware issues them.

Programs are loaded from their PT_LOAD segments at their virtual addresses (so .data is already
initialized and .bss zeroed: no startup code needs to run); the emulator maps its own 1 MiB stack and
a return sentinel above the image. build_elf() compiles and links such programs (cached).

Not modelled: cycles (counts are instructions), caches, peripherals / the System Control Space, and
alignment faults (an unaligned LDRD/LDM runs here but faults on a real M4).
"""
from __future__ import annotations

import ctypes
from pathlib import Path

from ..errors import EdgecError

CORES = {
    # name: (arch, unicorn cpu-model constant name, has FPU)
    "cortex-m0plus": ("thumb", "UC_CPU_ARM_CORTEX_M0", False),
    "cortex-m0": ("thumb", "UC_CPU_ARM_CORTEX_M0", False),
    "cortex-m3": ("thumb", "UC_CPU_ARM_CORTEX_M3", False),
    "cortex-m4": ("thumb", "UC_CPU_ARM_CORTEX_M4", True),
    "cortex-m7": ("thumb", "UC_CPU_ARM_CORTEX_M7", True),
    "cortex-m33": ("thumb", "UC_CPU_ARM_CORTEX_M33", True),
    "cortex-m55": ("thumb", "UC_CPU_ARM_CORTEX_M33", True),
    "cortex-a53": ("a64", "UC_CPU_ARM64_A53", True),
    "cortex-a72": ("a64", "UC_CPU_ARM64_A72", True),
    "cortex-a76": ("a64", "UC_CPU_ARM64_MAX", True),
}

PAGE = 0x1000
STACK_SIZE = 1 << 20
_PAINT = b"\xa5" * 16      # stack paint for the high-water mark
CPACR_M = 0xE000ED88   # M-profile Coprocessor Access Control Register (CP10/CP11 full access: 0xF << 20)


# arm-none-eabi-gcc / aarch64-linux-gnu-gcc flags that build code each core (or its emulated model) runs.
# cortex-m55 builds as cortex-m33 code: unicorn's M33 model lacks Armv8.1-M (MVE, low-overhead loops).
CORE_FLAGS = {
    "cortex-m0plus": ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"),
    "cortex-m0": ("-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft"),
    "cortex-m3": ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"),
    "cortex-m4": ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
    "cortex-m7": ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"),
    "cortex-m33": ("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
    "cortex-m55": ("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
    "cortex-a53": ("-mcpu=cortex-a53",),
    "cortex-a72": ("-mcpu=cortex-a72",),
    "cortex-a76": ("-mcpu=cortex-a76",),
}


class EmulatorError(EdgecError):
    pass


# memcpy/memset/memmove for AArch64 programs (glibc's static ones need its startup); weak, plain loops
_A64_RT = b"""#include <stddef.h>
__attribute__((weak)) void *memcpy(void *d, const void *s, size_t n) {
    unsigned char *dp = d; const unsigned char *sp = s; while (n--) *dp++ = *sp++; return d; }
__attribute__((weak)) void *memmove(void *d, const void *s, size_t n) {
    unsigned char *dp = d; const unsigned char *sp = s;
    if (dp < sp) { while (n--) *dp++ = *sp++; } else { while (n--) dp[n] = sp[n]; } return d; }
__attribute__((weak)) void *memset(void *d, int c, size_t n) {
    unsigned char *dp = d; while (n--) *dp++ = (unsigned char)c; return d; }
"""


def compiler_for(core: str) -> str:
    return "arm-none-eabi-gcc" if CORES[core][0] == "thumb" else "aarch64-linux-gnu-gcc"


def build_elf(sources, core: str, include_dirs=(), flags=(), opt: str = "-O2",
              source_flags: dict | None = None) -> Path:
    """Compile and link a freestanding ELF for `core` (cached by content under $EDGEC_CACHE/emu).

    sources: paths, or (name, text-or-bytes) pairs for generated files; source_flags: extra flags per
    source name (e.g. {"ec_conv2d_s8.c": ["-Dec_conv2d_s8=ec_conv2d_s8_ref"]} to link two variants of
    a kernel into one program). Cortex-M programs get runtimes/cortex-m/ (linker script, startup)
    and newlib + libgcc (memcpy/memset, 64-bit division); AArch64 ones are linked -static -nostdlib
    with libgcc and weak byte-loop memcpy/memset/memmove (glibc's static ones need its startup).
    Warnings are errors (-std=c99 -Wall -Wextra -Werror)."""
    import hashlib
    import shutil
    import subprocess
    import tempfile
    from ..paths import data_dir
    from .host import WARN, cache_root

    if core not in CORE_FLAGS:
        raise EmulatorError(f"unknown core {core!r}")
    cc = compiler_for(core)
    if shutil.which(cc) is None:
        raise EmulatorError(f"{cc} is not installed")
    source_flags = dict(source_flags or {})
    units: list[tuple[str, bytes]] = []
    for s in sources:
        if isinstance(s, tuple):
            name, text = s
            units.append((name, text.encode() if isinstance(text, str) else bytes(text)))
        else:
            units.append((Path(s).name, Path(s).read_bytes()))
    base = [opt, *CORE_FLAGS[core], "-ffreestanding", *WARN,
            *flags, *(f"-I{d}" for d in include_dirs)]
    thumb = CORES[core][0] == "thumb"
    link = ["-nostdlib", "-static"]
    if thumb:
        rt = data_dir("runtimes") / "cortex-m"
        units.append(("ec_cm_startup.c", (rt / "ec_cm_startup.c").read_bytes()))
        script = (rt / "ec_cm.ld").read_bytes()
    else:
        script = b""
        link += ["-Wl,-e,0"]
        units.append(("ec_a64_rt.c", _A64_RT))
        source_flags.setdefault("ec_a64_rt.c", ["-fno-tree-loop-distribute-patterns", "-fno-builtin"])
    h = hashlib.sha256(repr((cc, base, link, sorted(source_flags.items()))).encode() + script)
    for name, data in units:
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    for d in include_dirs:
        for f in sorted(Path(d).glob("*.h")):
            h.update(f.name.encode() + f.read_bytes())
    out = cache_root() / "emu" / h.hexdigest()[:20] / "prog.elf"
    if out.is_file():
        return out
    cache_root().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_root()) as tmp:
        tmpd = Path(tmp)
        objs = []
        for i, (name, data) in enumerate(units):
            src = tmpd / f"{i}_{name}"
            src.write_bytes(data)
            obj = src.with_suffix(".o")
            cmd = [cc, *base, *source_flags.get(name, ()), "-c", str(src), "-o", str(obj)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise EmulatorError(f"{cc} failed on {name}:\n{r.stderr[-4000:]}")
            objs.append(str(obj))
        libs = ["-lc", "-lgcc"] if thumb else ["-lgcc"]
        cmd = [cc, *CORE_FLAGS[core], *link, *objs, *libs, "-o", str(tmpd / "prog.elf")]
        if thumb:
            (tmpd / "ec_cm.ld").write_bytes(script)
            cmd[1:1] = [f"-T{tmpd / 'ec_cm.ld'}"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise EmulatorError(f"linking for {core} failed:\n{r.stderr[-4000:]}")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmpd / "prog.elf"), out)
    return out


def _lazy_imports():
    try:
        import unicorn  # noqa: F401
        from elftools.elf.elffile import ELFFile  # noqa: F401
    except ImportError as e:  # pragma: no cover - exercised only without the deps
        raise EmulatorError(f"the emulator needs unicorn and pyelftools ({e}); "
                            "pip install unicorn pyelftools") from e


def available() -> bool:
    """True when unicorn and pyelftools import."""
    try:
        _lazy_imports()
        return True
    except EmulatorError:
        return False


class Emulator:
    """record=True also keeps, for profiling: how often each basic block ran (`blocks`, keyed by
    (address, size)), and at every call of the `marker` function its first argument with the
    instruction count and block counts so far (`marks`)."""

    def __init__(self, elf_path, core: str, exact_hook: str = "block", record: bool = False,
                 marker: str | None = None):
        _lazy_imports()
        import unicorn as uc
        from unicorn import arm_const, arm64_const
        from elftools.elf.elffile import ELFFile

        if core not in CORES:
            raise EmulatorError(f"unknown core {core!r}; known: {', '.join(CORES)}")
        if exact_hook not in ("block", "code"):
            raise EmulatorError("exact_hook must be 'block' or 'code'")
        self.core = core
        self.arch, model, self.has_fpu = CORES[core]
        self.path = Path(elf_path)
        self.instructions = 0
        self._uc = uc

        with open(self.path, "rb") as f:
            elf = ELFFile(f)
            machine = elf["e_machine"]
            want = "EM_ARM" if self.arch == "thumb" else "EM_AARCH64"
            if machine != want:
                raise EmulatorError(f"{self.path}: {machine} ELF cannot run on {core} (needs {want})")
            segs = [(s["p_vaddr"], s["p_memsz"], s.data()) for s in elf.iter_segments()
                    if s["p_type"] == "PT_LOAD" and s["p_memsz"] > 0]
            self._symbols: dict[str, tuple[int, int]] = {}
            symtab = elf.get_section_by_name(".symtab")
            if symtab is not None:
                for sym in symtab.iter_symbols():
                    if sym.name and sym["st_shndx"] != "SHN_UNDEF" and sym["st_info"]["type"] in (
                            "STT_FUNC", "STT_OBJECT", "STT_NOTYPE"):
                        self._symbols.setdefault(sym.name, (sym["st_value"], sym["st_size"]))
        if not segs:
            raise EmulatorError(f"{self.path}: no loadable segments")

        if self.arch == "thumb":
            self.mu = uc.Uc(uc.UC_ARCH_ARM, uc.UC_MODE_THUMB | uc.UC_MODE_MCLASS)
            self.mu.ctl_set_cpu_model(getattr(arm_const, model))
            self._sp, self._lr, self._pc = arm_const.UC_ARM_REG_SP, arm_const.UC_ARM_REG_LR, arm_const.UC_ARM_REG_PC
            self._args = [arm_const.UC_ARM_REG_R0 + i for i in range(4)]
            self._ret = arm_const.UC_ARM_REG_R0
        else:
            self.mu = uc.Uc(uc.UC_ARCH_ARM64, uc.UC_MODE_ARM)
            self.mu.ctl_set_cpu_model(getattr(arm64_const, model))
            self._sp, self._lr, self._pc = (arm64_const.UC_ARM64_REG_SP, arm64_const.UC_ARM64_REG_X30,
                                            arm64_const.UC_ARM64_REG_PC)
            self._args = [arm64_const.UC_ARM64_REG_X0 + i for i in range(8)]
            self._ret = arm64_const.UC_ARM64_REG_X0

        # map the union of the segments' pages, then write their contents (bss stays zero)
        ranges = sorted((v // PAGE * PAGE, -(-(v + m) // PAGE) * PAGE) for v, m, _ in segs)
        merged: list[list[int]] = []
        for lo, hi in ranges:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        for lo, hi in merged:
            self.mu.mem_map(lo, hi - lo, uc.UC_PROT_ALL)
        for v, m, data in segs:
            if data:
                self.mu.mem_write(v, data)
        top = merged[-1][1]
        # stack, then a sentinel page the called function returns into
        self._stack_lo = (top + 16 * PAGE) // (1 << 16) * (1 << 16) + (1 << 16)
        self._stack_top = self._stack_lo + STACK_SIZE
        self.mu.mem_map(self._stack_lo, STACK_SIZE, uc.UC_PROT_READ | uc.UC_PROT_WRITE)
        self._sentinel = self._stack_top + PAGE
        self.mu.mem_map(self._sentinel, PAGE, uc.UC_PROT_ALL)
        if self.arch == "thumb":
            if self._sentinel >= 0xE0000000:
                raise EmulatorError(f"{self.path}: image too high in the address space for the M-profile sentinel")
            self.mu.mem_write(self._sentinel, b"\xfe\xe7" * (PAGE // 2))      # b .
        else:
            self.mu.mem_write(self._sentinel, b"\x00\x00\x00\x14" * (PAGE // 4))  # b .

        self._enable_fpu()
        self._cache: dict[tuple[int, int], int] = {}
        self.record = record
        self.blocks: dict[tuple[int, int], int] = {}
        self.marks: list[tuple[int, int, dict]] = []
        self._marker = self.symbol(marker) if marker else None
        self.stack_used = None
        self._count = 0
        self._limit = 0
        self._over = False
        self._install_hook(uc.UC_HOOK_BLOCK if exact_hook == "block" else uc.UC_HOOK_CODE,
                           self._on_block if exact_hook == "block" else self._on_code)

    # ---- setup ----------------------------------------------------------------------------
    def _enable_fpu(self) -> None:
        if not self.has_fpu:
            return
        if self.arch == "a64":
            from unicorn import arm64_const
            v = self.mu.reg_read(arm64_const.UC_ARM64_REG_CPACR_EL1)
            self.mu.reg_write(arm64_const.UC_ARM64_REG_CPACR_EL1, v | (3 << 20))
            return
        # M-profile: CPACR lives in the System Control Space, which unicorn does not map as memory
        # (a store to 0xE000ED88 would fault); set CP10/CP11 full access through its register id.
        # (unicorn's M-profile models also execute FP instructions without it; this is belt and braces.)
        from unicorn import arm_const
        try:
            v = self.mu.reg_read(arm_const.UC_ARM_REG_C1_C0_2)
            self.mu.reg_write(arm_const.UC_ARM_REG_C1_C0_2, v | (0xF << 20))
        except self._uc.UcError:
            pass

    # ---- hooks ----------------------------------------------------------------------------
    def _install_hook(self, htype: int, fn) -> None:
        """Register fn(address, size) as a raw ctypes callback: unicorn's Python wrapper adds two call
        layers per event, which dominate the per-block cost. Exceptions in fn stop emulation and are
        re-raised by call()."""
        self._hook_error = None
        try:
            from unicorn.unicorn_py3.unicorn import HOOK_CODE_CFUNC, uc_hook_h, uclib
        except ImportError:   # another binding layout: the public (slower) path
            def slow(_mu, address, size, _user):
                fn(address, size)
            self.mu.hook_add(htype, slow)
            self._stop = self.mu.emu_stop
            return

        uch = self.mu._uch

        def cb(_handle, address, size, _key):
            try:
                fn(address, size)
            except BaseException as e:  # noqa: BLE001 - re-raised after emu_start returns
                if self._hook_error is None:
                    self._hook_error = e
                uclib.uc_emu_stop(uch)

        self._cfunc = HOOK_CODE_CFUNC(cb)  # keep a reference: unicorn holds only the pointer
        handle = uc_hook_h()
        status = uclib.uc_hook_add(uch, ctypes.byref(handle), htype, self._cfunc, ctypes.c_void_p(0),
                                   ctypes.c_uint64(1), ctypes.c_uint64(0))
        if status != self._uc.UC_ERR_OK:
            raise EmulatorError(f"uc_hook_add failed: {self._uc.UcError(status)}")
        self._stop = lambda: uclib.uc_emu_stop(uch)

    def _block_len(self, address: int, size: int) -> int:
        n = 0
        if self.arch == "a64":
            n = size // 4
        else:
            code = bytes(self.mu.mem_read(address, size))
            off = 0
            while off < size:
                hw = code[off] | (code[off + 1] << 8)
                off += 4 if (hw >> 11) in (0b11101, 0b11110, 0b11111) else 2
                n += 1
        self._cache[(address, size)] = n
        return n

    def _on_block(self, address, size):
        n = self._cache.get((address, size))
        if n is None:
            n = self._block_len(address, size)
        if self.record:
            key = (address, size)
            if address == self._marker:
                self.marks.append((self.mu.reg_read(self._args[0]), self._count, dict(self.blocks)))
            self.blocks[key] = self.blocks.get(key, 0) + 1
        self._count += n
        if self._count > self._limit:
            self._over = True
            self._stop()

    def _on_code(self, address, size):
        self._count += 1
        if self._count > self._limit:
            self._over = True
            self._stop()

    # ---- public API -----------------------------------------------------------------------
    def symbol(self, name: str) -> int:
        try:
            addr = self._symbols[name][0]
        except KeyError:
            raise EmulatorError(f"{self.path}: no symbol {name!r}") from None
        return addr & ~1 if self.arch == "thumb" else addr

    def symbol_size(self, name: str) -> int:
        self.symbol(name)
        return self._symbols[name][1]

    def _addr(self, where) -> int:
        return self.symbol(where) if isinstance(where, str) else int(where)

    def write(self, where, data: bytes) -> None:
        self.mu.mem_write(self._addr(where), bytes(data))

    def read(self, where, n: int) -> bytes:
        return bytes(self.mu.mem_read(self._addr(where), n))

    def call(self, fn, *args: int, max_instructions: int = 2_000_000_000, measure_stack: bool = False) -> int:
        """Call fn (a symbol or an address) with integer/pointer arguments per AAPCS (r0-r3, then the
        stack, 4 bytes each) or AAPCS64 (x0-x7, then the stack, 8 bytes each); run until it returns;
        return r0/x0 (unsigned). Raises EmulatorError on a fault or past max_instructions.
        measure_stack: paint the stack first, then set `stack_used` to the bytes below the entry
        stack pointer that the call wrote (its high-water mark)."""
        entry = self._addr(fn)
        word = 4 if self.arch == "thumb" else 8
        mask = (1 << (8 * word)) - 1
        nreg = len(self._args)
        for reg, a in zip(self._args, args):
            self.mu.reg_write(reg, int(a) & mask)
        extra = [int(a) & mask for a in args[nreg:]]
        sp = (self._stack_top - 64 - word * len(extra)) & ~15
        if extra:
            self.mu.mem_write(sp, b"".join(a.to_bytes(word, "little") for a in extra))
        self.mu.reg_write(self._sp, sp)
        if measure_stack:
            self.mu.mem_write(self._stack_lo, _PAINT * ((sp - self._stack_lo) // len(_PAINT)))
        if self.record:
            self.blocks, self.marks = {}, []
        if self.arch == "thumb":
            self.mu.reg_write(self._lr, self._sentinel | 1)
            begin = entry | 1
        else:
            self.mu.reg_write(self._lr, self._sentinel)
            begin = entry
        self._count = 0
        self._limit = max_instructions
        self._over = False
        self._hook_error = None
        try:
            self.mu.emu_start(begin, self._sentinel)
        except self._uc.UcError as e:
            pc = self.mu.reg_read(self._pc)
            self.instructions = self._count
            raise EmulatorError(f"{self.path.name}: {fn} faulted on {self.core} at pc={pc:#x}: {e}") from None
        self.instructions = self._count
        if measure_stack:
            painted = bytes(self.mu.mem_read(self._stack_lo, sp - self._stack_lo))
            untouched = len(painted) - len(painted.lstrip(_PAINT[:1]))
            self.stack_used = (sp - self._stack_lo) - untouched
        if self._hook_error is not None:
            raise self._hook_error
        pc = self.mu.reg_read(self._pc)
        if self._over:
            raise EmulatorError(f"{self.path.name}: {fn} exceeded {max_instructions} instructions (pc={pc:#x})")
        if pc != self._sentinel:
            raise EmulatorError(f"{self.path.name}: {fn} stopped at pc={pc:#x} without returning")
        return self.mu.reg_read(self._ret)
