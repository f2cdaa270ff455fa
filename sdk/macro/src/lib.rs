//! The `#[task]` attribute and `export_plugin!` macro of `taskbox-sdk`.
//!
//! `#[task]` keeps the annotated function exactly as written (so plugin logic stays callable
//! and testable natively) and adds a hidden `TaskDef` beside it that binds a Celery call's
//! `args`/`kwargs` to the parameters the way Python binds a call. `export_plugin!` gathers
//! those definitions into the component's `handler` export. Use them through `taskbox_sdk`,
//! never directly.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Expr, FnArg, Ident, ItemFn, LitStr, Pat, Path, ReturnType, Token, Type, parse_macro_input,
};

/// Marks a function as a task; see `taskbox_sdk::task` for the full contract.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(attr as TaskArgs);
    let func = parse_macro_input!(item as ItemFn);
    match expand_task(args, func) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// Exports the listed `#[task]` functions as the component's handler; see
/// `taskbox_sdk::export_plugin`.
#[proc_macro]
pub fn export_plugin(input: TokenStream) -> TokenStream {
    let paths = parse_macro_input!(input with Punctuated::<Path, Token![,]>::parse_terminated);
    if paths.is_empty() {
        return syn::Error::new(
            Span::call_site(),
            "export_plugin! needs at least one #[task] function, e.g. export_plugin!(split)",
        )
        .to_compile_error()
        .into();
    }
    let defs = paths.iter().map(|path| {
        let mut def = path.clone();
        if let Some(last) = def.segments.last_mut() {
            last.ident = def_ident(&last.ident);
        }
        def
    });
    quote! {
        /// Every task this plugin serves, in the order given to `export_plugin!`; pass it to
        /// `taskbox_sdk::testing::call` to exercise argument binding natively.
        pub static TASKBOX_TASKS: &[::taskbox_sdk::TaskDef] = &[#(#defs),*];

        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        pub struct __TaskboxPlugin;

        #[cfg(target_arch = "wasm32")]
        impl ::taskbox_sdk::__private::Guest for __TaskboxPlugin {
            fn tasks() -> ::std::vec::Vec<::std::string::String> {
                ::taskbox_sdk::__private::task_names(TASKBOX_TASKS)
            }
            fn run(
                ctx: ::taskbox_sdk::__private::WitContext,
                call: ::taskbox_sdk::__private::WitCall,
            ) -> ::std::result::Result<::std::vec::Vec<u8>, ::taskbox_sdk::__private::WitTaskError> {
                ::taskbox_sdk::__private::dispatch(TASKBOX_TASKS, ctx, call)
            }
        }

        #[cfg(target_arch = "wasm32")]
        ::taskbox_sdk::wit::__export_wit!(__TaskboxPlugin);
    }
    .into()
}

fn def_ident(fn_ident: &Ident) -> Ident {
    format_ident!("__TASKBOX_TASK_{}", fn_ident)
}

/// `#[task]` or `#[task(name = "chunking.split")]`.
struct TaskArgs {
    name: Option<LitStr>,
}

impl Parse for TaskArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut name = None;
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            if key == "name" {
                let lit: LitStr = input.parse()?;
                if lit.value().trim().is_empty() {
                    return Err(syn::Error::new_spanned(lit, "task name must not be empty"));
                }
                name = Some(lit);
            } else {
                return Err(syn::Error::new_spanned(
                    key,
                    "unknown #[task] option: the only option is `name = \"...\"`",
                ));
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(TaskArgs { name })
    }
}

/// How one parameter is filled from the call.
enum ParamKind {
    /// `&Context` or `Context`: the task's context, not bound from the call.
    Context { by_ref: bool },
    /// `#[kwargs]`: every keyword argument no other parameter took (Python's `**kwargs`).
    RestKwargs,
    /// A value bound by position or by name.
    Value {
        position: usize,
        optional: bool,
        default: Option<Expr>,
    },
}

fn expand_task(args: TaskArgs, mut func: ItemFn) -> syn::Result<TokenStream2> {
    let fn_ident = func.sig.ident.clone();
    let task_name = args
        .name
        .map(|lit| lit.value())
        .unwrap_or_else(|| fn_ident.to_string());
    if func.sig.asyncness.is_some() {
        return Err(syn::Error::new_spanned(
            func.sig.asyncness,
            "#[task] functions must be synchronous",
        ));
    }
    if !func.sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &func.sig.generics,
            "#[task] functions cannot be generic",
        ));
    }

    let mut bindings = Vec::new();
    // `**kwargs` takes what is left, so it is bound after every named parameter.
    let mut rest_binding = None;
    let mut call_args = Vec::new();
    let mut position = 0usize;
    let mut has_rest = false;
    for (index, input) in func.sig.inputs.iter_mut().enumerate() {
        let FnArg::Typed(pat_type) = input else {
            return Err(syn::Error::new_spanned(
                input,
                "#[task] must be a free function, not a method",
            ));
        };
        let param_name = match &*pat_type.pat {
            Pat::Ident(pat) => pat.ident.to_string(),
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "#[task] parameters must be plain names (they are bound by name from kwargs)",
                ));
            }
        };
        let param_name = param_name.trim_start_matches("r#").to_string();

        // Take our own attributes off the parameter so the function compiles as written.
        let mut default = None;
        let mut rest = false;
        let mut kept = Vec::new();
        for attr in pat_type.attrs.drain(..) {
            if attr.path().is_ident("default") {
                let expr = attr.parse_args::<Expr>()?;
                // A string literal default fills a `String` parameter, as Python's `mode="x"`.
                default = Some(match expr {
                    Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(lit),
                        ..
                    }) => {
                        syn::parse_quote!(::std::convert::From::from(#lit))
                    }
                    other => other,
                });
            } else if attr.path().is_ident("kwargs") {
                rest = true;
            } else {
                kept.push(attr);
            }
        }
        pat_type.attrs = kept;

        let kind = if rest {
            if has_rest {
                return Err(syn::Error::new_spanned(
                    &pat_type.pat,
                    "only one #[kwargs] parameter is allowed",
                ));
            }
            has_rest = true;
            ParamKind::RestKwargs
        } else if let Some(by_ref) = context_param(&pat_type.ty) {
            ParamKind::Context { by_ref }
        } else {
            let kind = ParamKind::Value {
                position,
                optional: is_option(&pat_type.ty),
                default,
            };
            position += 1;
            kind
        };

        let var = format_ident!("__arg{}", index);
        let ty = &pat_type.ty;
        let span = pat_type.ty.span();
        let binding = match kind {
            ParamKind::Context { by_ref: true } => quote! { let #var = __ctx; },
            ParamKind::Context { by_ref: false } => {
                quote! { let #var = ::std::clone::Clone::clone(__ctx); }
            }
            ParamKind::RestKwargs => quote_spanned! {span=>
                let #var: #ty = __binder.rest_kwargs(#param_name)?;
            },
            ParamKind::Value {
                position,
                optional: _,
                default: Some(default),
            } => quote_spanned! {span=>
                let #var: #ty = match __binder.take::<#ty>(#position, #param_name)? {
                    ::std::option::Option::Some(v) => v,
                    ::std::option::Option::None => #default,
                };
            },
            ParamKind::Value {
                position,
                optional: true,
                default: None,
            } => quote_spanned! {span=>
                let #var: #ty = __binder.take::<#ty>(#position, #param_name)?.flatten();
            },
            ParamKind::Value {
                position,
                optional: false,
                default: None,
            } => quote_spanned! {span=>
                let #var: #ty = __binder.required::<#ty>(#position, #param_name)?;
            },
        };
        if rest {
            rest_binding = Some(binding);
        } else {
            bindings.push(binding);
        }
        call_args.push(var);
    }
    let positional = position;

    let returns_result = match &func.sig.output {
        ReturnType::Default => false,
        ReturnType::Type(_, ty) => last_segment_is(ty, "Result"),
    };
    let invoke = quote! { #fn_ident(#(#call_args),*) };
    let finish = if returns_result {
        quote! {
            match #invoke {
                ::std::result::Result::Ok(value) => ::taskbox_sdk::__private::IntoOutput::into_output(value),
                ::std::result::Result::Err(err) => ::std::result::Result::Err(
                    ::std::convert::Into::<::taskbox_sdk::TaskError>::into(err)
                ),
            }
        }
    } else {
        quote! { ::taskbox_sdk::__private::IntoOutput::into_output(#invoke) }
    };

    let def = def_ident(&fn_ident);
    let vis = &func.vis;
    let run_ident = format_ident!("__taskbox_run_{}", fn_ident);
    let rest_flag = has_rest;
    Ok(quote! {
        #func

        #[doc(hidden)]
        #[allow(non_snake_case, reason = "generated by #[task]")]
        fn #run_ident(
            __ctx: &::taskbox_sdk::Context,
            __call: ::taskbox_sdk::__private::Call,
        ) -> ::std::result::Result<::std::vec::Vec<u8>, ::taskbox_sdk::TaskError> {
            let mut __binder = ::taskbox_sdk::__private::Binder::new(__call, #positional, #rest_flag)?;
            #(#bindings)*
            #rest_binding
            __binder.finish()?;
            #finish
        }

        #[doc(hidden)]
        #[allow(non_upper_case_globals, reason = "named after the task function")]
        #vis const #def: ::taskbox_sdk::TaskDef = ::taskbox_sdk::TaskDef {
            name: #task_name,
            run: #run_ident,
        };
    })
}

/// `Some(by_ref)` when the type is `Context` or `&Context` (any path ending in `Context`).
fn context_param(ty: &Type) -> Option<bool> {
    match ty {
        Type::Reference(r) => last_segment_is(&r.elem, "Context").then_some(true),
        other => last_segment_is(other, "Context").then_some(false),
    }
}

fn is_option(ty: &Type) -> bool {
    last_segment_is(ty, "Option")
}

fn last_segment_is(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == name),
        Type::Group(g) => last_segment_is(&g.elem, name),
        Type::Paren(p) => last_segment_is(&p.elem, name),
        _ => false,
    }
}
