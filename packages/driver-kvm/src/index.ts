/** cloud-hypervisor driver (in progress). */
export {}
