/* Embeds the guest payload (guest.bin, built from guest/ at test time). */
        .section .rodata
        .globl guest_bin, guest_bin_end
        .balign 16
guest_bin:
        .incbin GUEST_BIN
guest_bin_end:
        .section .note.GNU-stack, "", @progbits
