/** Driver testkit (in progress). */
export {}
