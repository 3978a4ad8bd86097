/* edgec: minimal Cortex-M startup for freestanding programs (the emulator does not need it: it loads
 * .data/.bss from the ELF segments and calls functions directly; real hardware runs Reset_Handler).
 * Link with newlib (-lc -lgcc) for memcpy/memset, as edgec.run.emulate.build_elf does. */
#include <stddef.h>
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void) __attribute__((weak));
void Reset_Handler(void);
void Default_Handler(void);

__attribute__((section(".vectors"), used)) void (*const ec_vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0, Default_Handler,
    Default_Handler,
};

void Default_Handler(void) {
    for (;;) {
    }
}

void Reset_Handler(void) {
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
#if defined(__ARM_FP)
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10/CP11 full access */
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    if (main) (void)main();
    for (;;) {
    }
}
