/** vfkit driver (in progress). */
export {}
