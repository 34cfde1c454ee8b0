/** Previews reach the dev server under other host names. */
export default { allowedDevOrigins: ["*"] };
