// The benchmark app: the same module runs on NANO, workerd and deno.
export default {
  fetch() {
    return new Response("Hello World!");
  },
};
