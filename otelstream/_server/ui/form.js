// otelstream live page: a pipeline's parameters as a form, built from the OpenAPI document the
// server already publishes (each pipeline's parameters model: names, types, defaults, bounds,
// descriptions). A parameter the form cannot draw (a list, an object, a union) is a JSON field;
// a pipeline with no model found keeps the raw JSON box. Text only ever reaches the DOM as text.
"use strict";

(() => {
  // The OpenAPI document is at the app's root, which the page does not know: the router may sit
  // under a prefix, a mount or a proxy's root path. Try its own base, then each parent.
  async function loadSchemas(base) {
    const parts = base.split("/").filter(Boolean);
    for (let n = parts.length; n >= 0; n -= 1) {
      const prefix = n ? `/${parts.slice(0, n).join("/")}` : "";
      try {
        const response = await fetch(`${prefix}/openapi.json`);
        if (!response.ok) continue;
        const found = pipelineSchemas(await response.json());
        if (found.size) return found;
      } catch (_) {
        // not this one
      }
    }
    return new Map();
  }

  // Each pipeline's request model: `pipeline_name` a constant, `parameters` a $ref to its model
  function pipelineSchemas(doc) {
    const schemas = (doc && doc.components && doc.components.schemas) || {};
    const found = new Map();
    for (const schema of Object.values(schemas)) {
      const props = (schema && schema.properties) || {};
      const name = props.pipeline_name && props.pipeline_name.const;
      const ref = props.parameters && props.parameters.$ref;
      if (typeof name !== "string" || typeof ref !== "string") continue;
      const model = schemas[ref.split("/").pop()];
      if (model && model.type === "object") found.set(name, model);
    }
    return found;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // `anyOf: [X, null]` is an optional X
  function plain(schema) {
    if (Array.isArray(schema.anyOf)) {
      const real = schema.anyOf.filter((s) => s && s.type !== "null");
      if (real.length === 1) return { ...real[0], ...withoutAnyOf(schema), nullable: true };
    }
    return schema;
  }

  function withoutAnyOf(schema) {
    const copy = { ...schema };
    delete copy.anyOf;
    return copy;
  }

  function kind(schema) {
    if (Array.isArray(schema.enum)) return "enum";
    if (schema.type === "boolean") return "boolean";
    if (schema.type === "integer" || schema.type === "number") return "number";
    if (schema.type === "string") return "string";
    return "json";
  }

  function bounds(schema) {
    const parts = [];
    if (schema.minimum !== undefined) parts.push(`≥ ${schema.minimum}`);
    if (schema.exclusiveMinimum !== undefined) parts.push(`> ${schema.exclusiveMinimum}`);
    if (schema.maximum !== undefined) parts.push(`≤ ${schema.maximum}`);
    if (schema.exclusiveMaximum !== undefined) parts.push(`< ${schema.exclusiveMaximum}`);
    if (schema.minLength !== undefined) parts.push(`at least ${schema.minLength} characters`);
    if (schema.maxLength !== undefined) parts.push(`at most ${schema.maxLength} characters`);
    return parts.join(", ");
  }

  // One field: its label, input, and what the schema says of it; read() gives [present, value]
  function field(name, raw, required) {
    const schema = plain(raw);
    const type = kind(schema);
    const row = el("div", "param");
    row.dataset.field = name;
    const id = `param-${name}`;
    const label = el("label", "param-name", schema.title || name);
    label.htmlFor = id;
    const typeText = type === "json" ? "JSON" : type === "enum" ? "choice" : schema.type;
    const meta = el("span", "param-type", required ? `${typeText}, required` : typeText);
    let input;
    if (type === "enum") {
      input = el("select");
      if (!required || schema.default === undefined) input.append(new Option("", ""));
      for (const choice of schema.enum) input.append(new Option(String(choice), String(choice)));
      if (schema.default !== undefined && schema.default !== null) input.value = String(schema.default);
    } else if (type === "boolean") {
      input = el("input");
      input.type = "checkbox";
      input.checked = schema.default === true;
    } else if (type === "json") {
      input = el("textarea");
      input.rows = 2;
      input.spellcheck = false;
      if (schema.default !== undefined && schema.default !== null) input.value = JSON.stringify(schema.default);
    } else {
      input = el("input");
      input.type = type === "number" ? "number" : "text";
      if (type === "number") {
        input.step = schema.type === "integer" ? "1" : "any";
        if (schema.minimum !== undefined) input.min = String(schema.minimum);
        if (schema.maximum !== undefined) input.max = String(schema.maximum);
      }
      if (schema.default !== undefined && schema.default !== null) input.value = String(schema.default);
    }
    input.id = id;
    input.name = name;
    const head = el("div", "param-head");
    head.append(label, meta);
    row.append(head, input);
    const hint = [schema.description, bounds(schema)].filter(Boolean).join(" · ");
    if (hint) row.append(el("span", "param-hint", hint));
    const problem = el("span", "param-error");
    problem.hidden = true;
    row.append(problem);

    function read() {
      if (type === "boolean") return [true, input.checked];
      const text = input.value.trim();
      if (text === "") return [false, undefined];
      if (type === "enum") {
        const choice = schema.enum.find((value) => String(value) === text); // 1, not "1"
        return [true, choice === undefined ? text : choice];
      }
      if (type === "number") {
        const number = Number(text);
        if (!Number.isFinite(number)) throw new Error(`${name}: not a number`);
        return [true, number];
      }
      if (type === "json") {
        try {
          return [true, JSON.parse(text)];
        } catch (error) {
          throw new Error(`${name}: ${error.message}`);
        }
      }
      return [true, text];
    }

    function write(value) {
      if (type === "boolean") input.checked = value === true;
      else if (value === undefined || value === null) input.value = "";
      else input.value = type === "json" ? JSON.stringify(value) : String(value);
    }

    function flag(message) {
      problem.textContent = message || "";
      problem.hidden = !message;
      if (message) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }

    return { name, row, read, write, flag };
  }

  // The form of one pipeline's parameters model, in `box`: values() for the request body
  function build(box, model) {
    box.replaceChildren();
    const required = new Set(model.required || []);
    const fields = Object.entries(model.properties || {}).map(([name, schema]) =>
      field(name, schema, required.has(name)),
    );
    for (const one of fields) box.append(one.row);
    if (!fields.length) box.append(el("p", "muted", "This pipeline takes no parameters."));
    return {
      fields,
      values() {
        const values = {};
        for (const one of fields) {
          const [present, value] = one.read();
          if (present) values[one.name] = value;
        }
        return values;
      },
      fill(values) {
        for (const one of fields) one.write(values[one.name]);
      },
      // A 422's errors beside the fields they are about; true if one was placed
      flag(errors) {
        for (const one of fields) one.flag("");
        const placed = new Set(); // the names whose error now shows under their field
        for (const [name, message] of errors) {
          const one = fields.find((f) => f.name === name);
          if (one) {
            one.flag(message);
            placed.add(name);
          }
        }
        return placed;
      },
    };
  }

  window.otelstreamForm = { loadSchemas, build };
})();
